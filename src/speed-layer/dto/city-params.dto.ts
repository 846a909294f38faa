import { ApiProperty } from '@nestjs/swagger';
import { Matches } from 'class-validator';
import { ID_PATTERN } from '../../common/dto/measurement.dto';

export class CityParamsDto {
  @ApiProperty({ example: 'delhi', pattern: ID_PATTERN.source })
  @Matches(ID_PATTERN, { message: 'cityId must be 1–64 characters of A–Z, a–z, 0–9, _ or -' })
  cityId!: string;
}
