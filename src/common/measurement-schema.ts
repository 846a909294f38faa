import Ajv from 'ajv';
import { AQI_CATEGORIES } from '../domain/aqi';
import { MeasurementInput } from '../domain/measurement';
import { ID_PATTERN, isEventTime } from './dto/measurement.dto';

/**
 * SPEC §1 as a JSON schema, compiled once into a plain function: the hot path of validation
 * (every consumed record, every POSTed item). It accepts only what the class-validator rules of
 * MeasurementDto accept; anything it refuses goes through those rules, which say why. It is
 * stricter where the two could differ: a `city_name` with surrogate pairs or variation selectors
 * (whose length the two count differently) takes the slow path.
 */
const SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['city_id', 'city_name', 'timestamp', 'pm25_value', 'pm10_value', 'temperature_c'],
  properties: {
    city_id: { type: 'string', pattern: ID_PATTERN.source },
    city_name: { type: 'string', pattern: '^[^\\uD800-\\uDFFF\\uFE0E\\uFE0F]{1,128}$' },
    timestamp: { type: 'string' },
    pm25_value: { type: 'number', minimum: 0, maximum: 1000 },
    pm10_value: { type: 'number', minimum: 0, maximum: 2000 },
    temperature_c: { type: 'number', minimum: -90, maximum: 70 },
    aqi_value: { type: 'integer', minimum: 0, maximum: 500 },
    aqi_category: { enum: AQI_CATEGORIES },
    station_id: { type: 'string', pattern: ID_PATTERN.source },
  },
} as const;

// Patterns without the `u` flag: a surrogate is one unit, as class-validator counts it.
const matchesSchema = new Ajv({ unicodeRegExp: false, allErrors: false }).compile(SCHEMA);

/** True when `value` is a valid measurement at `now` (the event time may be 5 min ahead of it). */
export function isValidMeasurement(value: unknown, now: number): value is MeasurementInput {
  return (
    matchesSchema(value) &&
    isEventTime((value as { timestamp: unknown }).timestamp, now) &&
    Number.isFinite((value as MeasurementInput).pm25_value) &&
    Number.isFinite((value as MeasurementInput).pm10_value) &&
    Number.isFinite((value as MeasurementInput).temperature_c)
  );
}
