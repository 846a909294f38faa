import { parseWindowSizes } from '../domain/windows';
import { normaliseMeasurement } from '../domain/measurement';
import { cityItems, marshal } from './floor-items';

describe('floor items', () => {
  it('marshals strings, numbers, booleans and nested objects', () => {
    expect(marshal({ a: 'x', b: 1.5, c: false, d: { e: 2 }, f: undefined })).toEqual({
      a: { S: 'x' },
      b: { N: '1.5' },
      c: { BOOL: false },
      d: { M: { e: { N: '2' } } },
    });
  });

  it('builds the realtime item, the latest row and one aggregate row per window of a city', () => {
    const now = Date.parse('2026-11-30T10:07:30Z');
    const m = normaliseMeasurement(
      {
        city_id: 'delhi',
        city_name: 'Delhi',
        timestamp: '2026-11-30T10:07:29Z',
        pm25_value: 40,
        pm10_value: 60,
        temperature_c: 20,
      },
      new Date(now),
    );
    const items = cityItems(m, parseWindowSizes('5m,1h'), now);
    expect(items.realtime.city_id).toEqual({ S: 'delhi' });
    expect(items.realtime.message_id).toEqual({ S: m.message_id });
    expect(items.latest.city_id).toEqual({ S: '#cities' });
    expect(items.latest.sk).toEqual({ S: 'delhi' });
    expect(items.aggregates.map((a) => a.window_key.S)).toEqual([
      '5m#2026-11-30T10:05:00.000Z',
      '1h#2026-11-30T10:00:00.000Z',
    ]);
  });
});
