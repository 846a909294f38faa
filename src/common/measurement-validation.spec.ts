import { MAX_BATCH, validateMeasurement, validateMeasurementBody } from './measurement-validation';

const REQUIRED = [
  'city_id',
  'city_name',
  'timestamp',
  'pm25_value',
  'pm10_value',
  'temperature_c',
] as const;

/** A valid measurement with an event time safely in the past. */
const valid = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  city_id: 'delhi',
  city_name: 'Delhi',
  timestamp: '2025-06-01T08:00:00Z',
  pm25_value: 42.5,
  pm10_value: 80.1,
  temperature_c: 18.4,
  ...overrides,
});

const without = (field: string): Record<string, unknown> => {
  const copy = valid();
  delete copy[field];
  return copy;
};

/** Errors of a single measurement through both entry points (they must agree). */
function errorsOf(value: unknown): string[] {
  const direct = validateMeasurement(value);
  const body = validateMeasurementBody(value);
  if (direct.length === 0) {
    expect(body).toEqual({ ok: true, items: [value] });
  } else {
    expect(body).toEqual({ ok: false, errors: direct });
  }
  return direct;
}

function expectValid(value: unknown): void {
  expect(errorsOf(value)).toEqual([]);
}

/** Exactly one problem, about `field`. */
function expectInvalid(value: unknown, field: string): string {
  const errors = errorsOf(value);
  expect(errors).toHaveLength(1);
  expect(errors[0]).toContain(field);
  return errors[0];
}

describe('measurement validation (SPEC §1)', () => {
  it('accepts a complete valid measurement', () => {
    expectValid(valid());
  });

  it('accepts a measurement with every optional field', () => {
    expectValid(
      valid({
        aqi_value: 117,
        aqi_category: 'Unhealthy for Sensitive Groups',
        station_id: 'anand-vihar',
      }),
    );
  });

  describe('required fields', () => {
    it.each(REQUIRED)('rejects a measurement without %s ("<field> is required")', (field) => {
      expect(errorsOf(without(field))).toEqual([`${field} is required`]);
    });

    it('lists every missing field', () => {
      expect(errorsOf({})).toEqual(REQUIRED.map((f) => `${f} is required`));
    });
  });

  describe('types', () => {
    it.each([
      ['city_id', 123],
      ['city_name', 42],
      ['timestamp', 1764144000000],
      ['pm25_value', '12.5'],
      ['pm10_value', '80'],
      ['temperature_c', true],
      ['aqi_value', '50'],
      ['aqi_category', 3],
      ['station_id', 7],
    ])('rejects %s of the wrong type (%p)', (field, value) => {
      const message = expectInvalid(valid({ [field]: value }), field);
      expect(message).not.toContain('is required');
    });

    it.each(['pm25_value', 'pm10_value', 'temperature_c'])('rejects a non-finite %s', (field) => {
      expectInvalid(valid({ [field]: Number.NaN }), field);
      expectInvalid(valid({ [field]: Number.POSITIVE_INFINITY }), field);
      expectInvalid(valid({ [field]: Number.NEGATIVE_INFINITY }), field);
    });

    it.each(['city_id', 'pm25_value', 'timestamp'])(
      'rejects null for the required field %s',
      (field) => {
        expectInvalid(valid({ [field]: null }), field);
      },
    );
  });

  describe('numeric bounds', () => {
    it.each([
      ['pm25_value', 0],
      ['pm25_value', 1000],
      ['pm10_value', 0],
      ['pm10_value', 2000],
      ['temperature_c', -90],
      ['temperature_c', 70],
      ['temperature_c', 0],
    ])('accepts %s = %p', (field, value) => {
      expectValid(valid({ [field]: value }));
    });

    it.each([
      ['pm25_value', -0.1],
      ['pm25_value', 1000.1],
      ['pm10_value', -0.1],
      ['pm10_value', 2000.1],
      ['temperature_c', -90.1],
      ['temperature_c', 70.1],
    ])('rejects %s = %p', (field, value) => {
      expectInvalid(valid({ [field]: value }), field);
    });
  });

  describe('city_id', () => {
    it.each(['a', 'Delhi_01-x', 'x'.repeat(64)])('accepts %p', (cityId) => {
      expectValid(valid({ city_id: cityId }));
    });

    it.each([
      ['65 characters', 'x'.repeat(65)],
      ['empty', ''],
      ['a space', 'new delhi'],
      ['a dot', 'new.delhi'],
      ['a slash', 'a/b'],
      ['non-ASCII', 'münchen'],
    ])('rejects %s', (_label, cityId) => {
      expectInvalid(valid({ city_id: cityId }), 'city_id');
    });
  });

  describe('city_name', () => {
    it.each(['D', 'New Delhi (NCT)', 'n'.repeat(128)])('accepts %p', (name) => {
      expectValid(valid({ city_name: name }));
    });

    it.each([
      ['empty', ''],
      ['129 characters', 'n'.repeat(129)],
    ])('rejects %s', (_label, name) => {
      expectInvalid(valid({ city_name: name }), 'city_name');
    });
  });

  describe('timestamp', () => {
    it.each([
      '2025-06-01T08:00:00Z',
      '2025-06-01T08:00:00.123Z',
      '2025-06-01T08:00:00+05:30',
      '2025-06-01T08:00:00-04:00',
    ])('accepts %p', (timestamp) => {
      expectValid(valid({ timestamp }));
    });

    it.each([
      ['without a time zone', '2025-06-01T08:00:00'],
      ['a date only', '2025-06-01'],
      ['month 13', '2026-13-01T00:00:00Z'],
      ['day 32', '2025-01-32T00:00:00Z'],
      ['month 00', '2025-00-10T00:00:00Z'],
      ['not a date', 'yesterday'],
      ['empty', ''],
    ])('rejects %s (%p)', (_label, timestamp) => {
      expectInvalid(valid({ timestamp }), 'timestamp');
    });

    it('rejects a day that does not exist in its month (2025-02-30)', () => {
      expectInvalid(valid({ timestamp: '2025-02-30T00:00:00Z' }), 'timestamp');
    });

    it('rejects a time more than 5 minutes in the future', () => {
      const future = new Date(Date.now() + 6 * 60 * 1000).toISOString();
      expectInvalid(valid({ timestamp: future }), 'timestamp');
    });

    it('rejects a future time written with an offset', () => {
      const future = new Date(Date.now() + 60 * 60 * 1000);
      // the same instant as local time at +05:30
      const local =
        new Date(future.getTime() + 5.5 * 3600 * 1000).toISOString().slice(0, 19) + '+05:30';
      expectInvalid(valid({ timestamp: local }), 'timestamp');
    });

    it('accepts a time less than 5 minutes in the future', () => {
      const soon = new Date(Date.now() + 4 * 60 * 1000).toISOString();
      expectValid(valid({ timestamp: soon }));
    });
  });

  describe('aqi_value', () => {
    it.each([0, 1, 250, 500])('accepts %p', (aqi) => {
      expectValid(valid({ aqi_value: aqi }));
    });

    it.each([-1, 501, 12.5, Number.NaN])('rejects %p', (aqi) => {
      expectInvalid(valid({ aqi_value: aqi }), 'aqi_value');
    });
  });

  describe('aqi_category', () => {
    it.each([
      'Good',
      'Moderate',
      'Unhealthy for Sensitive Groups',
      'Unhealthy',
      'Very Unhealthy',
      'Hazardous',
    ])('accepts %p', (category) => {
      expectValid(valid({ aqi_category: category }));
    });

    it.each(['good', 'Dangerous', '', 'Unhealthy for sensitive groups'])(
      'rejects %p',
      (category) => {
        expectInvalid(valid({ aqi_category: category }), 'aqi_category');
      },
    );
  });

  describe('station_id', () => {
    it.each(['s', 'ST-01_a', 's'.repeat(64)])('accepts %p', (station) => {
      expectValid(valid({ station_id: station }));
    });

    it.each([
      ['empty', ''],
      ['65 characters', 's'.repeat(65)],
      ['a space', 'anand vihar'],
      ['a colon', 'st:1'],
    ])('rejects %s', (_label, station) => {
      expectInvalid(valid({ station_id: station }), 'station_id');
    });
  });

  describe('optional fields set to null', () => {
    it.each(['aqi_value', 'aqi_category', 'station_id'])('rejects %s: null', (field) => {
      const message = expectInvalid(valid({ [field]: null }), field);
      expect(message).not.toContain('is required');
    });
  });

  describe('unknown fields', () => {
    it('rejects an unknown field by name', () => {
      expect(errorsOf(valid({ humidity: 40 }))).toEqual(['humidity is not an allowed field']);
    });

    it('rejects the service-owned fields when a client sends them', () => {
      const errors = errorsOf(
        valid({ message_id: 'abc', ingestion_timestamp: '2025-06-01T08:00:00Z' }),
      );
      expect(errors).toEqual(
        expect.arrayContaining([
          'message_id is not an allowed field',
          'ingestion_timestamp is not an allowed field',
        ]),
      );
      expect(errors).toHaveLength(2);
    });
  });

  describe('the body is not an object', () => {
    it.each([
      ['a string', 'hello'],
      ['a number', 42],
      ['null', null],
      ['a boolean', true],
    ])('rejects %s', (_label, body) => {
      expect(validateMeasurementBody(body)).toEqual({
        ok: false,
        errors: ['body must be a JSON object'],
      });
      expect(validateMeasurement(body)).toEqual(['body must be a JSON object']);
    });
  });

  describe('batches', () => {
    it('rejects an empty array', () => {
      const result = validateMeasurementBody([]);
      expect(result.ok).toBe(false);
      if (!result.ok) {
        expect(result.errors).toHaveLength(1);
        expect(result.errors[0]).toContain('0');
      }
    });

    it('rejects an array of 501', () => {
      const result = validateMeasurementBody(Array.from({ length: MAX_BATCH + 1 }, () => valid()));
      expect(result.ok).toBe(false);
      if (!result.ok) {
        expect(result.errors).toHaveLength(1);
        expect(result.errors[0]).toContain('501');
      }
    });

    it('accepts an array of 500 valid measurements, in order', () => {
      const body = Array.from({ length: 500 }, (_, i) => valid({ city_id: `city-${i}` }));
      const result = validateMeasurementBody(body);
      expect(result.ok).toBe(true);
      if (result.ok) {
        expect(result.items).toHaveLength(500);
        expect(result.items[0].city_id).toBe('city-0');
        expect(result.items[499].city_id).toBe('city-499');
      }
    });

    it('accepts an array of 1', () => {
      expect(validateMeasurementBody([valid()])).toEqual({ ok: true, items: [valid()] });
    });

    it('reports every invalid item with its index and is all-or-nothing', () => {
      const body = [valid(), valid({ pm25_value: -1 }), valid(), without('city_name')];
      const result = validateMeasurementBody(body);
      expect(result.ok).toBe(false);
      if (result.ok) return;
      expect(result.errors).toHaveLength(2);
      expect(result.errors[0]).toMatch(/^\[1\]\.pm25_value /);
      expect(result.errors[1]).toBe('[3].city_name is required');
      expect('items' in result).toBe(false);
    });

    it('reports a non-object item with its index', () => {
      const result = validateMeasurementBody([valid(), 'oops', null]);
      expect(result).toEqual({
        ok: false,
        errors: ['[1] must be a JSON object', '[2] must be a JSON object'],
      });
    });

    it('prefixes unknown fields of an item with its index', () => {
      const result = validateMeasurementBody([valid({ extra: 1 })]);
      expect(result).toEqual({ ok: false, errors: ['[0].extra is not an allowed field'] });
    });

    it('rejects a nested array item', () => {
      const result = validateMeasurementBody([[valid()]]);
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.errors[0]).toMatch(/^\[0\]/);
    });
  });

  it('lists every problem of one measurement', () => {
    const errors = errorsOf(valid({ city_id: 'a b', pm10_value: 5000, extra: true }));
    expect(errors).toHaveLength(3);
    expect(errors.some((e) => e.startsWith('city_id'))).toBe(true);
    expect(errors.some((e) => e.startsWith('pm10_value'))).toBe(true);
    expect(errors).toContain('extra is not an allowed field');
  });
});
