import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, IsString, Max, MaxLength, Min } from 'class-validator';
import { CURSOR_DESCRIPTION } from '../../common/cursor';

/**
 * A page of GET /cities: one DynamoDB Query page (1 MB) holds about 1,600 latest items of
 * ~600 bytes, so 500 cities cost one read and about 300 KB of JSON; 1,000 is the most a page takes.
 */
export const CITY_PAGE_LIMIT = { default: 500, max: 1000 } as const;

export class CitiesQueryDto {
  @ApiPropertyOptional({
    minimum: 1,
    maximum: CITY_PAGE_LIMIT.max,
    default: CITY_PAGE_LIMIT.default,
  })
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(CITY_PAGE_LIMIT.max)
  limit: number = CITY_PAGE_LIMIT.default;

  @ApiPropertyOptional({ description: CURSOR_DESCRIPTION, maxLength: 2048 })
  @IsOptional()
  @IsString()
  @MaxLength(2048)
  cursor?: string;
}
