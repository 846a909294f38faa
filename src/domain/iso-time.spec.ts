import fc from 'fast-check';
import { isoTime } from './iso-time';

describe('isoTime', () => {
  it('is toISOString for any time a Date holds', () => {
    fc.assert(
      fc.property(fc.integer({ min: -8.64e15, max: 8.64e15 }), (ms) => {
        expect(isoTime(ms)).toBe(new Date(ms).toISOString());
      }),
      { numRuns: 20_000 },
    );
  });

  it('is toISOString around the ends of the four-digit years and of each field', () => {
    const edges = [
      Date.UTC(0, 0, 1) - 1,
      -62_167_219_200_000,
      -62_167_219_200_000 - 1,
      253_402_300_800_000 - 1,
      253_402_300_800_000,
      Date.parse('0999-12-31T23:59:59.999Z'),
      Date.parse('1000-01-01T00:00:00.000Z'),
      Date.parse('2024-02-29T09:05:07.008Z'),
      0,
      -1,
      Date.now(),
    ];
    for (const ms of edges) expect(isoTime(ms)).toBe(new Date(ms).toISOString());
  });

  it('throws as toISOString does for a time that is not one', () => {
    expect(() => isoTime(Number.NaN)).toThrow(RangeError);
    expect(() => isoTime(8.64e15 + 1)).toThrow(RangeError);
  });
});
