import { ApiProperty } from '@nestjs/swagger';
import { AQI_CATEGORIES } from '../../domain/aqi';
import { MeasurementDto } from '../../common/dto/measurement.dto';

export class StoredMeasurementDto extends MeasurementDto {
  @ApiProperty({ example: 117 })
  declare aqi_value: number;

  @ApiProperty({ enum: AQI_CATEGORIES, example: 'Unhealthy for Sensitive Groups' })
  declare aqi_category: (typeof AQI_CATEGORIES)[number];

  @ApiProperty({ example: '2026-11-26T08:00:00.000Z', format: 'date-time' })
  declare timestamp: string;

  @ApiProperty({ example: '2026-11-26T08:00:00.120Z', format: 'date-time' })
  ingestion_timestamp!: string;

  @ApiProperty({ example: '9f86d081884c7d65' })
  message_id!: string;
}

export class LatestResponseDto {
  @ApiProperty({ example: 'delhi' })
  city_id!: string;

  @ApiProperty({ type: [StoredMeasurementDto], description: 'newest event time first' })
  items!: StoredMeasurementDto[];

  @ApiProperty({
    nullable: true,
    type: String,
    description:
      'pass as `cursor` for the next (older) page; null on the last page; valid for the life of the instance',
  })
  next_cursor!: string | null;
}

export class CityDto {
  @ApiProperty({ example: 'delhi' })
  city_id!: string;

  @ApiProperty({ example: 'Delhi' })
  city_name!: string;

  @ApiProperty({ type: StoredMeasurementDto })
  latest!: StoredMeasurementDto;
}

export class CitiesResponseDto {
  @ApiProperty({ type: [CityDto] })
  items!: CityDto[];
}
