import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  IsInt,
  IsISO8601,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
} from 'class-validator';
import { CURSOR_DESCRIPTION } from '../../common/cursor';

export class AggregatesQueryDto {
  @ApiPropertyOptional({ example: '5m', description: 'one of AGGREGATION_WINDOWS (default 5m)' })
  @IsOptional()
  @Matches(/^\d{1,4}[mh]$/, { message: 'window must be a size like 5m or 1h' })
  window?: string;

  @ApiPropertyOptional({
    format: 'date-time',
    description: 'inclusive, on window_start; default 24 h before `to`',
  })
  @IsOptional()
  @IsISO8601({ strict: true }, { message: 'from must be an ISO-8601 date-time' })
  from?: string;

  @ApiPropertyOptional({
    format: 'date-time',
    description: 'exclusive, on window_start; default now',
  })
  @IsOptional()
  @IsISO8601({ strict: true }, { message: 'to must be an ISO-8601 date-time' })
  to?: string;

  @ApiPropertyOptional({ minimum: 1, maximum: 1000, default: 288 })
  @Type(() => Number)
  @Max(1000)
  @Min(1)
  @IsInt()
  limit = 288;

  @ApiPropertyOptional({ description: CURSOR_DESCRIPTION, maxLength: 2048 })
  @IsOptional()
  @IsString()
  @MaxLength(2048)
  cursor?: string;
}

export class AggregateDto {
  @ApiProperty({ example: 'delhi' }) city_id!: string;
  @ApiProperty({ example: '5m' }) window!: string;
  @ApiProperty({ format: 'date-time' }) window_start!: string;
  @ApiProperty({ format: 'date-time' }) window_end!: string;
  @ApiProperty({ example: 60, description: 'distinct measurements (by message id)' })
  record_count!: number;
  @ApiProperty() avg_pm25!: number;
  @ApiProperty() min_pm25!: number;
  @ApiProperty() max_pm25!: number;
  @ApiProperty() avg_pm10!: number;
  @ApiProperty() min_pm10!: number;
  @ApiProperty() max_pm10!: number;
  @ApiProperty({ description: 'mean of the measurements’ aqi_value' }) avg_aqi!: number;
  @ApiProperty() max_aqi!: number;
  @ApiProperty() avg_temperature_c!: number;
  @ApiProperty() min_temperature_c!: number;
  @ApiProperty() max_temperature_c!: number;
  @ApiProperty({
    description:
      'US EPA AQI of the window’s average concentrations: an indicator, not the official 24-hour AQI',
  })
  aqi!: number;
  @ApiProperty() aqi_category!: string;
  @ApiProperty({
    description:
      'false while the window can still change; true once the watermark passed end + allowed lateness; a final window never changes',
  })
  final!: boolean;
  @ApiPropertyOptional({
    enum: [true],
    description:
      'present on a window finalised before its time because its shard reached AGGREGATION_MAX_OPEN_WINDOWS: later records for it are late',
  })
  finalised_early?: true;
  @ApiProperty({ format: 'date-time' }) updated_at!: string;
}

export class AggregatesResponseDto {
  @ApiProperty({ example: 'delhi' }) city_id!: string;
  @ApiProperty({ example: '5m' }) window!: string;
  @ApiProperty({
    type: [AggregateDto],
    description: 'ascending window_start; the newest `limit` windows of the range (of the page)',
  })
  items!: AggregateDto[];

  @ApiProperty({
    nullable: true,
    type: String,
    description:
      'pass as `cursor` for the next page (older windows); null when none are left; valid for the life of the instance',
  })
  next_cursor!: string | null;
}
