import { ApiProperty } from '@nestjs/swagger';
import { AQI_CATEGORIES } from '../../domain/aqi';
import { Measurement } from '../../domain/measurement';
import { MeasurementDto } from '../../common/dto/measurement.dto';
import { CITY_PAGE_LIMIT } from './cities-query.dto';

export class StoredMeasurementDto extends MeasurementDto {
  @ApiProperty({ type: 'integer', example: 117, minimum: 0, maximum: 500, required: true })
  declare aqi_value: number;

  @ApiProperty({ enum: AQI_CATEGORIES, example: 'Unhealthy for Sensitive Groups', required: true })
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
  @ApiProperty({ type: [CityDto], description: 'ascending city_id (byte order)' })
  items!: CityDto[];

  @ApiProperty({
    nullable: true,
    type: String,
    description: `pass as \`cursor\` for the next page (at most ${CITY_PAGE_LIMIT.max} cities a page); null on the last page; valid for the life of the instance`,
  })
  next_cursor!: string | null;
}

/**
 * A stored measurement as the API answers it: the fields of SPEC §1 in their order, then the ones
 * the service adds, and nothing else (no keys, `ttl` or `stored_at`), whatever the item holds.
 */
export function toStoredMeasurementDto(m: Measurement): StoredMeasurementDto {
  return {
    city_id: m.city_id,
    city_name: m.city_name,
    timestamp: m.timestamp,
    pm25_value: m.pm25_value,
    pm10_value: m.pm10_value,
    temperature_c: m.temperature_c,
    aqi_value: m.aqi_value,
    aqi_category: m.aqi_category,
    ...(m.station_id !== undefined && { station_id: m.station_id }),
    ingestion_timestamp: m.ingestion_timestamp,
    message_id: m.message_id,
  };
}
