import fc from 'fast-check';
import { AQI_CATEGORIES } from '../domain/aqi';
import { isValidMeasurement } from './measurement-schema';
import { describeProblems, validateMeasurement } from './measurement-validation';

const NOW = Date.UTC(2026, 10, 30, 12, 0, 0);

/** Mostly valid values (so whole records are often valid), and edges and wrong ones, per field. */
const mostly = <T, U>(valid: fc.Arbitrary<T>, other: fc.Arbitrary<U>) =>
  fc.oneof({ arbitrary: valid, weight: 6 }, { arbitrary: other, weight: 1 });
const id = mostly(
  fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/),
  fc.constantFrom('x'.repeat(64), 'x'.repeat(65), '', 'bad id', 'ü', 'a\n', 7),
);
const name = mostly(
  fc.string({ minLength: 1, maxLength: 128 }),
  fc.oneof(
    fc.string({ unit: 'grapheme', maxLength: 140 }),
    fc.constantFrom(
      '',
      'x'.repeat(128),
      'x'.repeat(129),
      '❤️'.repeat(64),
      '😀'.repeat(128),
      '\uD800',
      5,
    ),
  ),
);
const time = mostly(
  fc
    .date({ min: new Date(NOW - 1e11), max: new Date(NOW + 300_000), noInvalidDate: true })
    .map((d) => d.toISOString()),
  fc.constantFrom(
    '2026-11-30T12:04:59Z',
    '2026-11-30T12:05:00.001Z',
    '2026-11-30T12:05:01Z',
    '2025-02-30T08:00:00Z',
    '2026-11-26T08:00:00+05:30',
    '2026-11-26T17:00:00+0530',
    '2026-11-26T08:00:00',
    '2026-11-26',
    'yesterday',
    1_700_000_000_000,
  ),
);
const number = (min: number, max: number) =>
  mostly(
    fc.double({ min, max, noNaN: true }),
    fc.constantFrom(
      min,
      max,
      min - 1e-9,
      max + 1e-9,
      max + 0.5,
      min - 0.5,
      -0,
      '12',
      null,
      true,
      Number.POSITIVE_INFINITY,
      Number.NaN,
    ),
  );
const aqi = mostly(fc.integer({ min: 0, max: 500 }), fc.constantFrom(-1, 501, 1.5, '7', null));
const category = mostly(fc.constantFrom(...AQI_CATEGORIES), fc.constantFrom('good', '', 3));
const absent = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined, freq: 6 });
const present = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined, freq: 30 });

const measurement = fc
  .record({
    city_id: present(id),
    city_name: present(name),
    timestamp: present(time),
    pm25_value: present(number(0, 1000)),
    pm10_value: present(number(0, 2000)),
    temperature_c: present(number(-90, 70)),
    aqi_value: absent(aqi),
    aqi_category: absent(category),
    station_id: absent(id),
    extra: fc.option(fc.constantFrom('x', { nested: 1 }), { nil: undefined, freq: 30 }),
  })
  .map((record) =>
    Object.fromEntries(Object.entries(record).filter(([, value]) => value !== undefined)),
  );

describe('the compiled measurement schema', () => {
  it('accepts only what the DTO rules accept, and all of it but names it leaves to them', () => {
    // Names whose length the two count differently take the slow path on purpose.
    const plain = (name: unknown) =>
      typeof name !== 'string' || !/[\uD800-\uDFFF]|\uFE0E|\uFE0F/.test(name);
    fc.assert(
      fc.property(measurement, (value) => {
        const fast = isValidMeasurement(value, NOW);
        const valid = describeProblems(value, '', { now: NOW }).length === 0;
        if (fast) expect({ value, valid }).toEqual({ value, valid: true });
        if (valid && plain(value.city_name)) expect({ value, fast }).toEqual({ value, fast: true });
      }),
      { numRuns: 5_000 },
    );
  });

  it('leaves every verdict and message of validateMeasurement as the DTO rules give them', () => {
    fc.assert(
      fc.property(measurement, (value) => {
        expect(validateMeasurement(value, '', { now: NOW })).toEqual(
          describeProblems(value, '', { now: NOW }),
        );
      }),
      { numRuns: 2_000 },
    );
  });

  it('refuses what is not an object', () => {
    for (const value of [null, undefined, 'x', 3, [], [{}]]) {
      expect(isValidMeasurement(value, NOW)).toBe(false);
    }
  });
});
