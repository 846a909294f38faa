import fc from 'fast-check';
import { EventTimes } from './event-times';

describe('EventTimes', () => {
  it('gives one city distinct times when many measurements share a clock reading', () => {
    const times = new EventTimes();
    const now = 1_700_000_000_000;
    const taken = Array.from({ length: 50 }, () => times.next('c1', now));
    expect(new Set(taken).size).toBe(50);
    expect(taken[0]).toBe(now);
    // Another city starts from the clock again.
    expect(times.next('c2', now)).toBe(now);
  });

  it('never repeats a city’s time, in order or not, at any rate', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            city: fc.constantFrom('a', 'b', 'c'),
            tick: fc.integer({ min: 0, max: 3 }),
            back: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 4000 }), fc.constant(600_000)),
          }),
          { maxLength: 400 },
        ),
        (steps) => {
          const times = new EventTimes();
          const seen = new Set<string>();
          let now = 1_700_000_000_000;
          for (const { city, tick, back } of steps) {
            now += tick;
            const at = back > 0 ? times.past(city, now - back, now) : times.next(city, now);
            expect(seen.has(`${city}@${at}`)).toBe(false);
            seen.add(`${city}@${at}`);
            if (back > 0) expect(at).toBeLessThanOrEqual(now - back);
            else expect(at).toBeGreaterThanOrEqual(now - 1);
          }
        },
      ),
    );
  });
});
