import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import {
  IsIn,
  IsInt,
  IsNumber,
  IsString,
  Length,
  Matches,
  Max,
  Min,
  registerDecorator,
  ValidateIf,
  ValidationOptions,
} from 'class-validator';
import { AQI_CATEGORIES, AqiCategory } from '../../domain/aqi';
import { MAX_FUTURE_SKEW_MS, MeasurementInput } from '../../domain/measurement';

export const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const ISO_WITH_ZONE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/;
const FINITE = { allowNaN: false, allowInfinity: false };

let referenceTime: number | undefined;

/**
 * Runs a synchronous validation with "now" set to `time` (a record's ingestion time), so a
 * consumer judges "not more than 5 minutes in the future" as the producer did, whatever its clock.
 */
export function atReferenceTime<T>(time: number | undefined, validate: () => T): T {
  referenceTime = time;
  try {
    return validate();
  } finally {
    referenceTime = undefined;
  }
}

/**
 * An event time as SPEC §1 wants it: ISO-8601 with a time zone, a date that exists as written,
 * and not more than 5 minutes after `now`.
 */
export function isEventTime(value: unknown, now: number): boolean {
  if (typeof value !== 'string' || !ISO_WITH_ZONE.test(value)) return false;
  const time = Date.parse(value);
  if (Number.isNaN(time)) return false;
  // Date.parse rolls 2025-02-30 over to March: the calendar date must exist as written.
  const digits = (from: number, count: number) => Number(value.slice(from, from + count));
  if (!isCalendarDate(digits(0, 4), digits(5, 2), digits(8, 2))) return false;
  return time <= now + MAX_FUTURE_SKEW_MS;
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Whether `day` of `month` (1–12) of `year` exists in the (proleptic) Gregorian calendar. */
export function isCalendarDate(year: number, month: number, day: number): boolean {
  if (month < 1 || month > 12 || day < 1) return false;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  return day <= (month === 2 && leap ? 29 : DAYS_IN_MONTH[month - 1]);
}

function IsEventTime(options?: ValidationOptions) {
  return (object: object, propertyName: string) =>
    registerDecorator({
      name: 'isEventTime',
      target: object.constructor,
      propertyName,
      options: {
        message: `${propertyName} must be an ISO-8601 date-time with a time zone (Z or ±hh:mm), not more than 5 minutes in the future`,
        ...options,
      },
      validator: {
        validate: (value: unknown) => isEventTime(value, referenceTime ?? Date.now()),
      },
    });
}

const optional = ValidateIf((_o: object, value: unknown) => value !== undefined);

/** One measurement as a client sends it (SPEC §1). Unknown fields are rejected by the validator. */
export class MeasurementDto implements MeasurementInput {
  @ApiProperty({
    example: 'delhi',
    pattern: ID_PATTERN.source,
    description: 'Kinesis partition key',
  })
  @Matches(ID_PATTERN, { message: 'city_id must be 1–64 characters of A–Z, a–z, 0–9, _ or -' })
  @IsString()
  city_id!: string;

  @ApiProperty({ example: 'Delhi', minLength: 1, maxLength: 128 })
  @Length(1, 128)
  @IsString()
  city_name!: string;

  @ApiProperty({
    example: '2026-11-26T08:00:00Z',
    format: 'date-time',
    description: 'Event time, ISO-8601 with a time zone; not more than 5 minutes in the future',
  })
  @IsEventTime()
  timestamp!: string;

  @ApiProperty({ example: 42.5, minimum: 0, maximum: 1000, description: 'PM2.5 in µg/m³' })
  @Max(1000)
  @Min(0)
  @IsNumber(FINITE)
  pm25_value!: number;

  @ApiProperty({ example: 80.1, minimum: 0, maximum: 2000, description: 'PM10 in µg/m³' })
  @Max(2000)
  @Min(0)
  @IsNumber(FINITE)
  pm10_value!: number;

  @ApiProperty({ example: 18.4, minimum: -90, maximum: 70 })
  @Max(70)
  @Min(-90)
  @IsNumber(FINITE)
  temperature_c!: number;

  @ApiPropertyOptional({
    type: 'integer',
    example: 117,
    minimum: 0,
    maximum: 500,
    description: 'computed when absent',
  })
  @optional
  @Max(500)
  @Min(0)
  @IsInt()
  aqi_value?: number;

  @ApiPropertyOptional({ enum: AQI_CATEGORIES, description: 'computed when absent' })
  @optional
  @IsIn(AQI_CATEGORIES)
  aqi_category?: AqiCategory;

  @ApiPropertyOptional({ example: 'anand-vihar', pattern: ID_PATTERN.source })
  @optional
  @Matches(ID_PATTERN, { message: 'station_id must be 1–64 characters of A–Z, a–z, 0–9, _ or -' })
  @IsString()
  station_id?: string;
}
