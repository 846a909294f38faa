import { createHash } from 'node:crypto';
import { MeasurementInput, normaliseMeasurement } from './measurement';

const sha256Prefix = (text: string) =>
  createHash('sha256').update(text, 'utf8').digest('hex').slice(0, 16);

const input = (overrides: Partial<MeasurementInput> = {}): MeasurementInput => ({
  city_id: 'delhi',
  city_name: 'Delhi',
  timestamp: '2026-11-26T08:00:00Z',
  pm25_value: 12.0,
  pm10_value: 80,
  temperature_c: 18.4,
  ...overrides,
});

const ingestedAt = new Date('2026-11-26T08:00:01.234Z');

describe('normaliseMeasurement', () => {
  it('converts a timestamp with an offset to UTC ISO with milliseconds', () => {
    const m = normaliseMeasurement(input({ timestamp: '2026-11-26T09:00:00+01:00' }), ingestedAt);
    expect(m.timestamp).toBe('2026-11-26T08:00:00.000Z');
  });

  it('derives the message id from the normalised timestamp', () => {
    const m = normaliseMeasurement(input({ timestamp: '2026-11-26T09:00:00+01:00' }), ingestedAt);
    expect(m.message_id).toBe(sha256Prefix('delhi_2026-11-26T08:00:00.000Z'));
  });

  it('gives the same message id to the same instant written two ways', () => {
    const a = normaliseMeasurement(input({ timestamp: '2026-11-26T09:00:00+01:00' }), ingestedAt);
    const b = normaliseMeasurement(
      input({ timestamp: '2026-11-26T08:00:00Z' }),
      new Date('2026-11-26T09:00:00Z'),
    );
    const c = normaliseMeasurement(
      input({ timestamp: '2026-11-26T03:30:00.000-04:30' }),
      ingestedAt,
    );
    expect(a.message_id).toBe(b.message_id);
    expect(c.message_id).toBe(a.message_id);
  });

  it('includes the station in the message id when present', () => {
    const m = normaliseMeasurement(input({ station_id: 'anand-vihar' }), ingestedAt);
    expect(m.message_id).toBe(sha256Prefix('delhi_2026-11-26T08:00:00.000Z_anand-vihar'));
  });

  it('computes the AQI and its category when absent', () => {
    const m = normaliseMeasurement(input({ pm25_value: 12.0, pm10_value: 80 }), ingestedAt);
    expect(m.aqi_value).toBe(63);
    expect(m.aqi_category).toBe('Moderate');
  });

  it('keeps a given AQI and derives the category from it', () => {
    const m = normaliseMeasurement(input({ aqi_value: 250 }), ingestedAt);
    expect(m.aqi_value).toBe(250);
    expect(m.aqi_category).toBe('Very Unhealthy');
  });

  it('keeps a given AQI of 0 (not treated as absent)', () => {
    const m = normaliseMeasurement(input({ pm25_value: 100, aqi_value: 0 }), ingestedAt);
    expect(m.aqi_value).toBe(0);
    expect(m.aqi_category).toBe('Good');
  });

  it('keeps both AQI and category when given', () => {
    const m = normaliseMeasurement(input({ aqi_value: 42, aqi_category: 'Hazardous' }), ingestedAt);
    expect(m.aqi_value).toBe(42);
    expect(m.aqi_category).toBe('Hazardous');
  });

  it('keeps a given category while computing an absent AQI', () => {
    const m = normaliseMeasurement(input({ aqi_category: 'Unhealthy' }), ingestedAt);
    expect(m.aqi_value).toBe(63);
    expect(m.aqi_category).toBe('Unhealthy');
  });

  it('keeps station_id when present', () => {
    const m = normaliseMeasurement(input({ station_id: 's-1' }), ingestedAt);
    expect(m.station_id).toBe('s-1');
  });

  it('has no station_id key at all when absent', () => {
    const m = normaliseMeasurement(input(), ingestedAt);
    expect('station_id' in m).toBe(false);
    expect(Object.keys(m)).not.toContain('station_id');
  });

  it('sets ingestion_timestamp to the given date', () => {
    const m = normaliseMeasurement(input(), ingestedAt);
    expect(m.ingestion_timestamp).toBe('2026-11-26T08:00:01.234Z');
  });

  it('copies the other fields unchanged', () => {
    const m = normaliseMeasurement(input(), ingestedAt);
    expect(m).toEqual({
      city_id: 'delhi',
      city_name: 'Delhi',
      timestamp: '2026-11-26T08:00:00.000Z',
      pm25_value: 12.0,
      pm10_value: 80,
      temperature_c: 18.4,
      aqi_value: 63,
      aqi_category: 'Moderate',
      ingestion_timestamp: '2026-11-26T08:00:01.234Z',
      message_id: sha256Prefix('delhi_2026-11-26T08:00:00.000Z'),
    });
  });
});
