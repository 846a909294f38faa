import { AttributeValue } from '@aws-sdk/client-dynamodb';
import { Measurement } from '../domain/measurement';
import { WindowSize, windowStart } from '../domain/windows';

export type Item = Record<string, AttributeValue>;

/** Marshals a plain JSON object (strings, numbers, booleans, nested objects) once, by hand. */
export function marshal(value: Record<string, unknown>): Item {
  const item: Item = {};
  for (const [name, v] of Object.entries(value)) {
    if (v === undefined) continue;
    if (typeof v === 'string') item[name] = { S: v };
    else if (typeof v === 'number') item[name] = { N: String(v) };
    else if (typeof v === 'boolean') item[name] = { BOOL: v };
    else if (v !== null && typeof v === 'object')
      item[name] = { M: marshal(v as Record<string, unknown>) };
    else throw new Error(`cannot marshal ${name}`);
  }
  return item;
}

/** What the floor writes for one city, marshalled once: the realtime item's body, the latest row, the window rows. */
export interface CityItems {
  realtime: Item;
  latest: Item;
  aggregates: Item[];
}

/**
 * The items the service writes for `m`'s city, with the same attributes and sizes: a realtime item
 * (its `sk` is set per record), the per-city latest row, and one aggregate row per window size.
 */
export function cityItems(m: Measurement, windows: WindowSize[], now: number): CityItems {
  const ttl = Math.floor(now / 1000) + 86_400;
  const eventKey = `${m.timestamp}#${m.message_id}`;
  const realtime = marshal({ ...m, sk: eventKey, ttl, stored_at: now });
  const latest = marshal({
    city_id: '#cities',
    sk: m.city_id,
    latest: { ...m },
    event_key: eventKey,
    ttl,
  });
  const aggregates = windows.map((w) => {
    const start = new Date(windowStart(now, w.ms)).toISOString();
    return marshal({
      city_id: m.city_id,
      window: w.label,
      window_start: start,
      window_end: new Date(windowStart(now, w.ms) + w.ms).toISOString(),
      record_count: 1234,
      avg_pm25: m.pm25_value,
      min_pm25: m.pm25_value,
      max_pm25: m.pm25_value,
      avg_pm10: m.pm10_value,
      min_pm10: m.pm10_value,
      max_pm10: m.pm10_value,
      avg_aqi: m.aqi_value,
      max_aqi: m.aqi_value,
      avg_temperature_c: m.temperature_c,
      min_temperature_c: m.temperature_c,
      max_temperature_c: m.temperature_c,
      aqi: m.aqi_value,
      aqi_category: m.aqi_category,
      final: false,
      window_key: `${w.label}#${start}`,
      updated_at: new Date(now).toISOString(),
    });
  });
  return { realtime, latest, aggregates };
}
