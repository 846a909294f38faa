import fc from 'fast-check';
import { isCalendarDate, isEventTime } from './measurement.dto';

/** The oracle: the date Date builds from the fields (setUTCFullYear takes years 0–99 as written). */
function exists(year: number, month: number, day: number): boolean {
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  return (
    date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day
  );
}

describe('isCalendarDate', () => {
  it('agrees with Date for every year 0–9999, month 0–13 and day 0–32', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 9999 }),
        fc.integer({ min: 0, max: 13 }),
        fc.integer({ min: 0, max: 32 }),
        (year, month, day) => {
          expect(isCalendarDate(year, month, day)).toBe(exists(year, month, day));
        },
      ),
      { numRuns: 20_000 },
    );
  });

  it('knows the leap years', () => {
    for (const [date, ok] of [
      ['2024-02-29', true],
      ['2023-02-29', false],
      ['2000-02-29', true],
      ['2100-02-29', false],
      ['0000-02-29', true],
      ['2025-04-31', false],
      ['2025-12-31', true],
    ] as const) {
      const [y, m, d] = date.split('-').map(Number);
      expect([date, isCalendarDate(y, m, d)]).toEqual([date, ok]);
    }
  });
});

describe('isEventTime', () => {
  const now = Date.parse('2026-12-02T10:00:00Z');

  it('takes a date that exists and refuses one Date.parse would roll over', () => {
    expect(isEventTime('2024-02-29T23:59:59.999Z', now)).toBe(true);
    expect(isEventTime('2025-02-29T00:00:00Z', now)).toBe(false);
    expect(isEventTime('2025-06-31T00:00:00+02:00', now)).toBe(false);
  });
});
