import { aqiCategory, AqiCategory, computeAqi } from './aqi';
import { isoTime } from './iso-time';
import { messageId } from './message-id';

/** A measurement as a client sends it (SPEC §1), already validated. */
export interface MeasurementInput {
  city_id: string;
  city_name: string;
  timestamp: string;
  pm25_value: number;
  pm10_value: number;
  temperature_c: number;
  aqi_value?: number;
  aqi_category?: AqiCategory;
  station_id?: string;
}

/** A measurement as it travels on the stream and is stored: normalised, with its identity. */
export interface Measurement extends MeasurementInput {
  aqi_value: number;
  aqi_category: AqiCategory;
  ingestion_timestamp: string;
  message_id: string;
}

export const MAX_FUTURE_SKEW_MS = 5 * 60 * 1000;

/** Six decimals is far below sensor precision, and keeps every value inside DynamoDB's number range. */
const tidy = (value: number) => Math.round(value * 1e6) / 1e6 + 0;

/**
 * Normalises the event time to UTC ISO with ms and the values to six decimals, fills the AQI when
 * absent and derives the message id.
 */
export function normaliseMeasurement(input: MeasurementInput, ingestedAt: Date): Measurement {
  const timestamp = isoTime(Date.parse(input.timestamp));
  const aqi = input.aqi_value ?? computeAqi(tidy(input.pm25_value), tidy(input.pm10_value));
  const measurement: Measurement = {
    city_id: input.city_id,
    city_name: input.city_name,
    timestamp,
    pm25_value: tidy(input.pm25_value),
    pm10_value: tidy(input.pm10_value),
    temperature_c: tidy(input.temperature_c),
    aqi_value: aqi,
    aqi_category: input.aqi_category ?? aqiCategory(aqi),
    ingestion_timestamp: isoTime(ingestedAt.getTime()),
    message_id: messageId(input.city_id, timestamp, input.station_id),
  };
  if (input.station_id !== undefined) measurement.station_id = input.station_id;
  return measurement;
}
