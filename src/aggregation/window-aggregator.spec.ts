import fc from 'fast-check';
import { computeAqi } from '../domain/aqi';
import { Measurement, normaliseMeasurement } from '../domain/measurement';
import { Aggregate, AggregationSettings, WindowAggregator } from './window-aggregator';
import { parseWindowSizes } from './windows';

const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);
const settings = (over: Partial<AggregationSettings> = {}): AggregationSettings => ({
  sizes: parseWindowSizes('5m'),
  outOfOrdernessMs: 5000,
  allowedLatenessMs: 30000,
  idleMs: 10000,
  ...over,
});

function record(
  city: string,
  offsetMs: number,
  pm25: number,
  pm10 = 20,
  temperature = 10,
  station = 's1',
): Measurement {
  return normaliseMeasurement(
    {
      city_id: city,
      city_name: city.toUpperCase(),
      timestamp: new Date(T0 + offsetMs).toISOString(),
      pm25_value: pm25,
      pm10_value: pm10,
      temperature_c: temperature,
      station_id: station,
    },
    new Date(T0 + offsetMs),
  );
}

/** Runs everything through, then lets the shard go idle long enough for every window to be final. */
function finals(agg: WindowAggregator, arrivals: Measurement[]): Map<string, Aggregate> {
  let now = T0;
  for (const m of arrivals) agg.add(m, (now += 1));
  const out = agg.collect(now + 10 * 3_600_000, true, false);
  return new Map(out.map((a) => [`${a.window}|${a.city_id}|${a.window_start}`, a]));
}

/** The oracle: a deliberately plain computation over the distinct records. */
function oracle(
  records: Measurement[],
  sizesMs: [string, number][],
): Map<string, Partial<Aggregate>> {
  const distinct = new Map(records.map((r) => [r.message_id, r]));
  const groups = new Map<string, Measurement[]>();
  for (const r of distinct.values()) {
    for (const [label, ms] of sizesMs) {
      const start = Math.floor(Date.parse(r.timestamp) / ms) * ms;
      const key = `${label}|${r.city_id}|${new Date(start).toISOString()}`;
      groups.set(key, [...(groups.get(key) ?? []), r]);
    }
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const out = new Map<string, Partial<Aggregate>>();
  for (const [key, rs] of groups) {
    const pm25 = rs.map((r) => r.pm25_value);
    const pm10 = rs.map((r) => r.pm10_value);
    out.set(key, {
      record_count: rs.length,
      avg_pm25: mean(pm25),
      min_pm25: Math.min(...pm25),
      max_pm25: Math.max(...pm25),
      avg_pm10: mean(pm10),
      max_pm10: Math.max(...pm10),
      max_aqi: Math.max(...rs.map((r) => r.aqi_value)),
      avg_temperature_c: mean(rs.map((r) => r.temperature_c)),
      final: true,
    });
  }
  return out;
}

describe('WindowAggregator', () => {
  it('averages 10, 20, 60 to 30 in every order (the plan gave 37.5 or 25)', () => {
    const orders = [
      [10, 20, 60],
      [60, 20, 10],
      [20, 60, 10],
    ];
    for (const order of orders) {
      const agg = new WindowAggregator(settings());
      const result = [
        ...finals(
          agg,
          order.map((v, i) => record('c', i * 1000, v)),
        ).values(),
      ];
      expect(result).toHaveLength(1);
      expect(result[0]).toMatchObject({
        record_count: 3,
        avg_pm25: 30,
        min_pm25: 10,
        max_pm25: 60,
        final: true,
      });
    }
  });

  it('computes the window AQI from the average concentrations, not by averaging AQIs', () => {
    const agg = new WindowAggregator(settings());
    const [a] = finals(agg, [record('c', 0, 5, 10), record('c', 1000, 55, 10)]).values();
    expect(a.avg_pm25).toBe(30);
    expect(a.aqi).toBe(computeAqi(30, 10));
    expect(a.aqi).not.toBe(Math.round((computeAqi(5, 10) + computeAqi(55, 10)) / 2));
    expect(a.avg_aqi).toBe((computeAqi(5, 10) + computeAqi(55, 10)) / 2);
    expect(a.aqi_category).toBe('Moderate');
  });

  it('counts a duplicate once', () => {
    const agg = new WindowAggregator(settings());
    const m = record('c', 0, 10);
    const [a] = finals(agg, [m, record('c', 1000, 20), m, m]).values();
    expect(a.record_count).toBe(2);
    expect(a.avg_pm25).toBe(15);
  });

  it('does not add a record later than the allowed lateness; reports it late', () => {
    const agg = new WindowAggregator(settings());
    agg.add(record('c', 0, 10), T0);
    // Event time far past window end + lateness + out-of-orderness moves the watermark on.
    agg.add(record('c', 5 * 60_000 + 40_000, 99), T0 + 1);
    const finalsNow = agg.collect(T0 + 2, false, false);
    expect(finalsNow.map((a) => [a.window_start, a.record_count])).toEqual([
      [new Date(T0).toISOString(), 1],
    ]);
    agg.confirm(finalsNow);
    expect(agg.add(record('c', 1000, 50), T0 + 3).late).toEqual(['5m']);
    expect(agg.collect(T0 + 4, false, true).map((a) => a.window_start)).toEqual([
      new Date(T0 + 300_000).toISOString(),
    ]);
  });

  it('keeps a window open within the allowed lateness and adds a late-but-allowed record', () => {
    const agg = new WindowAggregator(settings());
    agg.add(record('c', 0, 10), T0);
    agg.add(record('c', 5 * 60_000 + 20_000, 99), T0 + 1); // watermark = end + 15 s < end + 30 s
    expect(agg.collect(T0 + 2, false, false)).toEqual([]);
    expect(agg.add(record('c', 2000, 20), T0 + 3).late).toEqual([]);
    agg.add(record('c', 5 * 60_000 + 36_000, 1), T0 + 4);
    const [a] = agg.collect(T0 + 5, false, false);
    expect(a).toMatchObject({ record_count: 2, avg_pm25: 15, final: true });
  });

  it('finalises the last window of an idle, caught-up shard from wall-clock time, never jumping to now', () => {
    const agg = new WindowAggregator(settings());
    agg.add(record('c', 60_000, 10), T0);
    expect(agg.collect(T0 + 9_999, true, false)).toEqual([]); // not idle yet
    const wmBefore = agg.watermark;
    expect(agg.collect(T0 + 10_000, false, false)).toEqual([]); // not caught up
    expect(agg.watermark).toBe(wmBefore);
    // window end = +300 s, lateness 30 s, ooo 5 s: final once idle for 300 - 60 + 30 + 5 = 275 s
    expect(agg.collect(T0 + 274_999, true, false)).toEqual([]);
    expect(agg.collect(T0 + 275_000, true, false)).toHaveLength(1);
  });

  it('emits changed open windows as partial only when asked, and each change once', () => {
    const agg = new WindowAggregator(settings());
    agg.add(record('c', 0, 10), T0);
    expect(agg.collect(T0, false, false)).toEqual([]);
    expect(agg.collect(T0, false, true)).toEqual([
      expect.objectContaining({ final: false, record_count: 1 }),
    ]);
    expect(agg.collect(T0, false, true)).toEqual([]);
  });

  it('runs several window sizes side by side', () => {
    const agg = new WindowAggregator(settings({ sizes: parseWindowSizes('1m,5m,15m,1h') }));
    const result = finals(agg, [record('c', 0, 10), record('c', 90_000, 30)]);
    const counts = [...result.values()].map((a) => `${a.window}:${a.record_count}`).sort();
    expect(counts).toEqual(['15m:2', '1h:2', '1m:1', '1m:1', '5m:2']);
  });

  it('restores from a snapshot and ends with the same aggregates as an uninterrupted run', () => {
    const records = Array.from({ length: 40 }, (_, i) =>
      record(`c${i % 3}`, i * 17_000, (i * 7) % 100, 50, 5),
    );
    const straight = finals(new WindowAggregator(settings()), records);
    const first = new WindowAggregator(settings());
    let now = T0;
    for (const m of records.slice(0, 25)) first.add(m, (now += 1));
    const emittedBefore = first.collect(now, false, false);
    const restored = new WindowAggregator(settings());
    restored.restore(JSON.parse(JSON.stringify(first.snapshot())));
    const rest = finals(restored, records.slice(25));
    const combined = new Map([
      ...emittedBefore.map((a) => [`${a.window}|${a.city_id}|${a.window_start}`, a] as const),
      ...rest,
    ]);
    expect(combined).toEqual(straight);
  });

  it('property: final aggregates equal the oracle for any order within the bound and any duplication', () => {
    const sizes: [string, number][] = [
      ['1m', 60_000],
      ['5m', 300_000],
    ];
    const recordArb = fc.record({
      city: fc.constantFrom('a', 'b', 'c'),
      offset: fc.integer({ min: 0, max: 20 * 60_000 }),
      pm25: fc.double({ min: 0, max: 1000, noNaN: true }),
      pm10: fc.double({ min: 0, max: 2000, noNaN: true }),
      temperature: fc.double({ min: -90, max: 70, noNaN: true }),
      station: fc.constantFrom('s1', 's2'),
    });
    fc.assert(
      fc.property(
        fc.array(recordArb, { minLength: 1, maxLength: 60 }),
        fc.array(fc.integer({ min: 0, max: 4999 }), { minLength: 60, maxLength: 60 }),
        fc.array(fc.nat(59), { maxLength: 20 }),
        (specs, delays, duplicates) => {
          const records = specs.map((s) =>
            record(s.city, s.offset, s.pm25, s.pm10, s.temperature, s.station),
          );
          // Identical identity means identical measurement: keep the first of each id.
          const byId = new Map<string, Measurement>();
          for (const r of records) if (!byId.has(r.message_id)) byId.set(r.message_id, r);
          const distinct = [...byId.values()];
          const withDuplicates = [
            ...distinct,
            ...duplicates.filter((i) => i < distinct.length).map((i) => distinct[i]),
          ];
          // Arrival order: event time plus a delay below the out-of-orderness bound.
          const arrivals = withDuplicates
            .map((r, i) => ({ r, at: Date.parse(r.timestamp) + delays[i % delays.length] }))
            .sort((x, y) => x.at - y.at)
            .map((x) => x.r);
          const agg = new WindowAggregator(settings({ sizes: parseWindowSizes('1m,5m') }));
          const got = finals(agg, arrivals);
          const want = oracle(distinct, sizes);
          expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
          for (const [key, expected] of want) {
            const actual = got.get(key)!;
            expect(actual.record_count).toBe(expected.record_count);
            expect(actual.min_pm25).toBe(expected.min_pm25);
            expect(actual.max_pm25).toBe(expected.max_pm25);
            expect(actual.max_pm10).toBe(expected.max_pm10);
            expect(actual.max_aqi).toBe(expected.max_aqi);
            expect(actual.avg_pm25).toBeCloseTo(expected.avg_pm25!, 5);
            expect(actual.avg_pm10).toBeCloseTo(expected.avg_pm10!, 5);
            expect(actual.avg_temperature_c).toBeCloseTo(expected.avg_temperature_c!, 5);
            expect(actual.final).toBe(true);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('property: the result does not depend on the arrival order (bit for bit)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            offset: fc.integer({ min: 0, max: 240_000 }),
            pm25: fc.double({ min: 0, max: 1000, noNaN: true }),
          }),
          {
            minLength: 2,
            maxLength: 30,
          },
        ),
        fc.integer(),
        (specs, seed) => {
          const records = specs.map((s, i) => record('c', s.offset, s.pm25, 10, 10, `s${i}`));
          const shuffled = [...records].sort(
            (a, b) =>
              ((a.message_id.charCodeAt(0) ^ seed) & 7) - ((b.message_id.charCodeAt(0) ^ seed) & 7),
          );
          expect(finals(new WindowAggregator(settings()), shuffled)).toEqual(
            finals(new WindowAggregator(settings()), records),
          );
        },
      ),
    );
  });

  it('adopts the open windows of parent shards for its own cities, from the slowest parent watermark', () => {
    const left = new WindowAggregator(settings());
    left.add(record('a', 10_000, 10), T0);
    left.add(record('b', 20_000, 20), T0);
    const right = new WindowAggregator(settings());
    right.add(record('c', 5_000, 30), T0);
    const child = new WindowAggregator(settings());
    child.adopt([left.snapshot(), right.snapshot()], (city) => city !== 'b');
    expect(child.watermark).toBe(right.watermark);
    child.add(record('a', 11_000, 30), T0 + 1);
    const result = finals(child, []);
    expect([...result.values()].map((a) => [a.city_id, a.record_count, a.avg_pm25]).sort()).toEqual(
      [
        ['a', 2, 20],
        ['c', 1, 30],
      ],
    );
  });

  it('keeps a final window until its write is confirmed, so a failed write loses nothing', () => {
    const agg = new WindowAggregator(settings());
    agg.add(record('c', 0, 10), T0);
    agg.add(record('c', 400_000, 20), T0 + 1);
    const first = agg.collect(T0 + 2, false, false);
    expect(first.map((a) => a.final)).toEqual([true]);
    // The write failed: the window is still there, in the next collect and in a snapshot.
    const again = agg.collect(T0 + 3, false, false);
    expect(again).toEqual(first);
    const restored = new WindowAggregator(settings());
    restored.restore(JSON.parse(JSON.stringify(agg.snapshot())));
    expect(restored.collect(T0 + 4, false, false)).toEqual(first);
    agg.confirm(again);
    expect(agg.collect(T0 + 5, false, false)).toEqual([]);
  });

  it('after a restore with no new records, an idle shard still finalises its last windows', () => {
    const agg = new WindowAggregator(settings());
    agg.add(record('c', 60_000, 10), T0);
    const restored = new WindowAggregator(settings());
    restored.restore(JSON.parse(JSON.stringify(agg.snapshot())), T0 + 1000);
    expect(restored.collect(T0 + 1000 + 274_999, true, false)).toEqual([]);
    expect(restored.collect(T0 + 1000 + 275_000, true, false)).toHaveLength(1);
  });

  it('caps a future event time at its ingestion time for the watermark', () => {
    const agg = new WindowAggregator(settings());
    agg.add(record('c', 0, 10), T0);
    const ahead = {
      ...record('c', 240_000, 20),
      ingestion_timestamp: new Date(T0 + 1000).toISOString(),
    };
    agg.add(ahead, T0 + 1);
    expect(agg.watermark).toBe(T0 + 1000 - 5000);
  });

  it('allows unconditional partial writes only once every window open at the start is final', () => {
    const agg = new WindowAggregator(settings());
    expect(agg.partialsCannotMeetFinals).toBe(false);
    agg.add(record('c', 60_000, 10), T0);
    expect(agg.partialsCannotMeetFinals).toBe(false);
    // First event at +60 s: windows up to 5 min + 30 s lateness later must be final first.
    agg.add(record('c', 60_000 + 335_000 + 5000, 10), T0 + 1);
    expect(agg.partialsCannotMeetFinals).toBe(true);
    const restored = new WindowAggregator(settings());
    restored.restore(JSON.parse(JSON.stringify(agg.snapshot())), T0 + 2);
    expect(restored.partialsCannotMeetFinals).toBe(false);
  });
});
