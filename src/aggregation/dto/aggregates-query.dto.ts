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
import { AQI_CATEGORIES } from '../../domain/aqi';
import { StoredAggregate } from '../aggregates.repository';

export class AggregatesQueryDto {
  @ApiPropertyOptional({
    example: '5m',
    description: 'one of AGGREGATION_WINDOWS (default 5m, else the first size)',
  })
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
  @ApiProperty({ format: 'date-time', example: '2026-11-26T08:00:00.000Z' })
  window_start!: string;
  @ApiProperty({ format: 'date-time', example: '2026-11-26T08:05:00.000Z' })
  window_end!: string;
  @ApiProperty({
    type: 'integer',
    minimum: 1,
    example: 60,
    description: 'distinct measurements (by message id)',
  })
  record_count!: number;
  @ApiProperty({ example: 41.8, description: 'µg/m³' }) avg_pm25!: number;
  @ApiProperty({ example: 12.1 }) min_pm25!: number;
  @ApiProperty({ example: 96.4 }) max_pm25!: number;
  @ApiProperty({ example: 80.3 }) avg_pm10!: number;
  @ApiProperty({ example: 31.7 }) min_pm10!: number;
  @ApiProperty({ example: 140.2 }) max_pm10!: number;
  @ApiProperty({ example: 109.35, description: 'mean of the measurements’ aqi_value' })
  avg_aqi!: number;
  @ApiProperty({ type: 'integer', example: 172 }) max_aqi!: number;
  @ApiProperty({ example: 18.2 }) avg_temperature_c!: number;
  @ApiProperty({ example: 16.9 }) min_temperature_c!: number;
  @ApiProperty({ example: 19.8 }) max_temperature_c!: number;
  @ApiProperty({
    type: 'integer',
    example: 116,
    description:
      'US EPA AQI of the window’s average concentrations: an indicator, not the official 24-hour AQI',
  })
  aqi!: number;
  @ApiProperty({ enum: AQI_CATEGORIES, example: 'Unhealthy for Sensitive Groups' })
  aqi_category!: string;
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
  @ApiProperty({ format: 'date-time', example: '2026-11-26T08:05:31.204Z' })
  updated_at!: string;
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

/** A stored window as the API answers it: the fields of SPEC §2 in their order, and nothing else. */
export function toAggregateDto(a: StoredAggregate): AggregateDto {
  return {
    city_id: a.city_id,
    window: a.window,
    window_start: a.window_start,
    window_end: a.window_end,
    record_count: a.record_count,
    avg_pm25: a.avg_pm25,
    min_pm25: a.min_pm25,
    max_pm25: a.max_pm25,
    avg_pm10: a.avg_pm10,
    min_pm10: a.min_pm10,
    max_pm10: a.max_pm10,
    avg_aqi: a.avg_aqi,
    max_aqi: a.max_aqi,
    avg_temperature_c: a.avg_temperature_c,
    min_temperature_c: a.min_temperature_c,
    max_temperature_c: a.max_temperature_c,
    aqi: a.aqi,
    aqi_category: a.aqi_category,
    final: a.final,
    ...(a.finalised_early && { finalised_early: true as const }),
    updated_at: a.updated_at,
  };
}
