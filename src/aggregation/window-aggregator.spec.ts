import fc from 'fast-check';
import { computeAqi } from '../domain/aqi';
import { Measurement, normaliseMeasurement } from '../domain/measurement';
import { HashRange, inRange, partitionHash } from './hash-range';
import { AggregationSettings, parseWindowSizes } from '../domain/windows';
import { Aggregate, WindowAggregator } from './window-aggregator';

const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);
const settings = (over: Partial<AggregationSettings> = {}): AggregationSettings => ({
  sizes: parseWindowSizes('5m'),
  outOfOrdernessMs: 5000,
  allowedLatenessMs: 30000,
  idleMs: 10000,
  maxOpenWindows: 1_000_000,
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

/**
 * The exact mean of values kept to six decimals: their decimal digits summed as a BigInt, then one
 * correctly rounded division (so within half an ulp of the true rational mean).
 */
function exactMean(values: number[]): number {
  const sum = values.reduce((acc, v) => acc + BigInt(v.toFixed(6).replace('.', '')), 0n);
  return Number(sum) / (values.length * 1_000_000);
}

/** Served at full double precision (15 significant digits), not rounded to 6 decimals. */
function expectFullPrecision(actual: number, exact: number): void {
  if (exact === 0) expect(actual).toBe(0);
  else expect(Math.abs(actual - exact)).toBeLessThanOrEqual(Math.abs(exact) * 1e-14);
}

const keyOf = (a: Aggregate) => `${a.window}|${a.city_id}|${a.window_start}`;

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
  const mean = exactMean;
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

  it('emits changed open windows as partial only when asked, until the change is confirmed', () => {
    const agg = new WindowAggregator(settings());
    agg.add(record('c', 0, 10), T0);
    expect(agg.collect(T0, false, false)).toEqual([]);
    const partial = agg.collect(T0, false, true);
    expect(partial).toEqual([expect.objectContaining({ final: false, record_count: 1 })]);
    // Not confirmed (the write may have failed): emitted again.
    expect(agg.collect(T0, false, true)).toEqual(partial);
    agg.confirm(partial);
    expect(agg.collect(T0, false, true)).toEqual([]);
    agg.add(record('c', 1000, 20), T0 + 1);
    const second = agg.collect(T0 + 2, false, true);
    expect(second).toEqual([
      expect.objectContaining({ final: false, record_count: 2, avg_pm25: 15 }),
    ]);
    // It changed again before that write was confirmed: the confirm does not cover the change.
    agg.add(record('c', 2000, 30), T0 + 3);
    agg.confirm(second);
    expect(agg.collect(T0 + 4, false, true)).toEqual([
      expect.objectContaining({ final: false, record_count: 3, avg_pm25: 20 }),
    ]);
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
            expectFullPrecision(actual.avg_pm25, expected.avg_pm25!);
            expectFullPrecision(actual.avg_pm10, expected.avg_pm10!);
            expectFullPrecision(actual.avg_temperature_c, expected.avg_temperature_c!);
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
    child.adopt(
      [{ snapshot: left.snapshot() }, { snapshot: right.snapshot() }],
      (city) => city !== 'b',
    );
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
});

describe('WindowAggregator: precision, change tracking, snapshots, resharding, cap, refusals', () => {
  const minute = 60_000;

  it('serves averages at full double precision, not rounded to six decimals', () => {
    const agg = new WindowAggregator(settings());
    // -0.1333333 is normalised to six decimals on the way in: the stored values are these three.
    const [a] = finals(agg, [
      record('c', 0, 10, 20, -0.1),
      record('c', 1000, 10, 20, -0.2),
      record('c', 2000, 11, 20, -0.1333333),
    ]).values();
    const mean = Number(((-0.1 - 0.2 - 0.133333) / 3).toPrecision(15));
    expect(mean).toBe(-0.144444333333333);
    expect(a.avg_temperature_c).toBe(mean);
    expect(a.avg_temperature_c).not.toBe(-0.144444);
    expect(a.avg_pm25).toBe(Number((31 / 3).toPrecision(15)));
    expect(a.avg_pm25).toBe(10.3333333333333);
  });

  it('keeps a changed window changed until confirmed, and keeps the flag in the snapshot', () => {
    const agg = new WindowAggregator(settings());
    agg.add(record('a', 0, 10), T0);
    agg.add(record('b', 0, 30), T0 + 1);
    const first = agg.collect(T0 + 2, false, true);
    expect(first.map((x) => [x.city_id, x.final, x.record_count])).toEqual([
      ['a', false, 1],
      ['b', false, 1],
    ]);
    expect(agg.collect(T0 + 3, false, true)).toEqual(first); // no confirm: emitted again
    // Only a's partial was written.
    const written = first.filter((x) => x.city_id === 'a');
    const restored = new WindowAggregator(settings());
    restored.restore(JSON.parse(JSON.stringify(agg.snapshot({ written }))), T0 + 4);
    // a is clean: not emitted until it changes; b was never written: still emitted.
    expect(restored.collect(T0 + 5, false, true).map((x) => x.city_id)).toEqual(['b']);
    expect(restored.collect(T0 + 6, false, true).map((x) => x.city_id)).toEqual(['b']);
    restored.add(record('a', 1000, 20), T0 + 7);
    expect(
      restored.collect(T0 + 8, false, true).map((x) => [x.city_id, x.record_count, x.avg_pm25]),
    ).toEqual([
      ['a', 2, 15],
      ['b', 1, 30],
    ]);
  });

  it('keeps a window changed in the snapshot when it changed after the write was planned', () => {
    const agg = new WindowAggregator(settings());
    agg.add(record('a', 0, 10), T0);
    const written = agg.collect(T0 + 1, false, true);
    agg.add(record('a', 1000, 20), T0 + 2);
    const restored = new WindowAggregator(settings());
    restored.restore(JSON.parse(JSON.stringify(agg.snapshot({ written }))), T0 + 3);
    expect(restored.collect(T0 + 4, false, true)).toEqual([
      expect.objectContaining({ final: false, record_count: 2 }),
    ]);
  });

  it('drops the written finals from the snapshot, so they are not written twice', () => {
    const agg = new WindowAggregator(settings());
    agg.add(record('c', 0, 10), T0);
    agg.add(record('c', 400_000, 20), T0 + 1);
    const written = agg.collect(T0 + 2, false, true);
    expect(written.map((x) => x.final)).toEqual([true, false]);
    const restored = new WindowAggregator(settings());
    restored.restore(JSON.parse(JSON.stringify(agg.snapshot({ written }))), T0 + 3);
    expect(restored.collect(T0 + 4, false, true)).toEqual([]);
    // The written final window is late now, as it would be without the restart.
    expect(restored.add(record('c', 1000, 30), T0 + 5).late).toEqual(['5m']);
  });

  it('restores a version-1 snapshot with every window changed', () => {
    const m1 = record('c', 1000, 10, 30, 4);
    const m2 = record('c', 2000, 20, 50, 6);
    const other = record('d', 3000, 40, 40, 2);
    const stats = (...ms: [number, number][]): [number, number, number] => [
      ms.reduce((acc, [v]) => acc + Math.round(v * 1e6), 0),
      Math.min(...ms.map(([v]) => v)),
      Math.max(...ms.map(([v]) => v)),
    ];
    const row = (ms: Measurement[]) => [
      '5m',
      ms[0].city_id,
      ms[0].city_name,
      T0,
      300_000,
      ms.length,
      stats(...ms.map((m) => [m.pm25_value, 0] as [number, number])),
      stats(...ms.map((m) => [m.pm10_value, 0] as [number, number])),
      stats(...ms.map((m) => [m.temperature_c, 0] as [number, number])),
      stats(...ms.map((m) => [m.aqi_value, 0] as [number, number])),
      ms.map((m) => m.message_id).join(''),
    ];
    const v1 = {
      v: 1,
      maxEventTime: T0 + 3000,
      watermark: T0 + 3000 - 5000,
      windows: [row([m1, m2]), row([other])],
    };
    const agg = new WindowAggregator(settings());
    agg.restore(JSON.parse(JSON.stringify(v1)), T0 + 10);
    expect(agg.watermark).toBe(T0 - 2000);
    expect(agg.collect(T0 + 11, false, false)).toEqual([]); // nothing final
    const partials = agg.collect(T0 + 12, false, true);
    expect(partials).toEqual([
      expect.objectContaining({
        city_id: 'c',
        final: false,
        record_count: 2,
        avg_pm25: 15,
        min_pm25: 10,
        max_pm25: 20,
        avg_pm10: 40,
        avg_temperature_c: 5,
      }),
      expect.objectContaining({ city_id: 'd', final: false, record_count: 1, avg_pm25: 40 }),
    ]);
    agg.confirm(partials);
    expect(agg.collect(T0 + 13, false, true)).toEqual([]);
    // The ids came back: a duplicate is not counted, a new record is.
    agg.add(m2, T0 + 14);
    expect(agg.collect(T0 + 15, false, true)).toEqual([]);
    agg.add(record('c', 4000, 30), T0 + 16);
    expect(agg.collect(T0 + 17, false, true)).toEqual([
      expect.objectContaining({ city_id: 'c', record_count: 3, avg_pm25: 20 }),
    ]);
  });

  describe('a merge of parents with far-apart watermarks', () => {
    const HALF = 2n ** 127n;
    const rangeA: HashRange = { start: 0n, end: HALF - 1n };
    const rangeB: HashRange = { start: HALF, end: 2n ** 128n - 1n };
    const cityIn = (range: HashRange) => {
      const city = Array.from({ length: 64 }, (_, i) => `city-${i}`).find((c) =>
        inRange(partitionHash(c), range),
      );
      if (!city) throw new Error('no candidate city in range');
      return city;
    };
    const x = cityIn(rangeA); // on the fast parent A
    const y = cityIn(rangeB); // on the slow parent B

    const merged = () => {
      // A (fast): x's first window is final there (watermark past its end + lateness), and written.
      const a = new WindowAggregator(settings());
      a.add(record(x, 0, 10), T0);
      a.add(record(x, 5 * minute + 40_000, 50), T0 + 1);
      const written = a.collect(T0 + 2, false, true);
      expect(written.map((w) => [w.window_start, w.final])).toEqual([
        [new Date(T0).toISOString(), true],
        [new Date(T0 + 5 * minute).toISOString(), false],
      ]);
      // B (slow): y's first window is open.
      const b = new WindowAggregator(settings());
      b.add(record(y, 10_000, 20), T0);
      const child = new WindowAggregator(settings());
      child.adopt(
        [
          { snapshot: JSON.parse(JSON.stringify(a.snapshot({ written }))), range: rangeA },
          { snapshot: JSON.parse(JSON.stringify(b.snapshot())), range: rangeB },
        ],
        () => true,
        T0 + 3,
      );
      return { a, b, child };
    };

    const expectMergedBehaviour = (
      child: WindowAggregator,
      a: WindowAggregator,
      b: WindowAggregator,
      now: number,
    ) => {
      expect(child.watermark).toBe(b.watermark);
      expect(child.watermarkOf(y)).toBe(b.watermark);
      expect(child.watermarkOf(x)).toBe(a.watermark);
      // A record for x in the window already final on A: late, no window reopened.
      expect(child.add(record(x, 1000, 99), now).late).toEqual(['5m']);
      // A record for y in its open window: added.
      expect(child.add(record(y, 20_000, 40), now + 1).late).toEqual([]);
      // x's second window, open on A (and written there as a partial), came along.
      expect(child.add(record(x, 5 * minute + 50_000, 70), now + 2).late).toEqual([]);
      expect(
        child
          .collect(now + 3, false, true)
          .map((w) => [w.city_id, w.window_start, w.record_count])
          .sort(),
      ).toEqual(
        [
          [y, new Date(T0).toISOString(), 2],
          [x, new Date(T0 + 5 * minute).toISOString(), 2],
        ].sort(),
      );
    };

    it('keeps final on the child what was final on the fast parent, from the slow watermark', () => {
      expect(partitionHash(x) < HALF && partitionHash(y) >= HALF).toBe(true);
      const { a, b, child } = merged();
      expect(a.watermark - b.watermark).toBe(5 * minute + 30_000);
      expectMergedBehaviour(child, a, b, T0 + 10);
    });

    it('writes as final a window that was final on the fast parent but not yet written there', () => {
      const a = new WindowAggregator(settings());
      a.add(record(x, 0, 10), T0);
      a.add(record(x, 5 * minute + 40_000, 50), T0 + 1); // x's first window final on A
      const b = new WindowAggregator(settings());
      b.add(record(y, 10_000, 20), T0);
      const child = new WindowAggregator(settings());
      child.adopt(
        [
          { snapshot: JSON.parse(JSON.stringify(a.snapshot())), range: rangeA },
          { snapshot: JSON.parse(JSON.stringify(b.snapshot())), range: rangeB },
        ],
        () => true,
        T0 + 3,
      );
      expect(child.collect(T0 + 4, false, false)).toEqual([
        expect.objectContaining({
          city_id: x,
          window_start: new Date(T0).toISOString(),
          final: true,
          record_count: 1,
        }),
      ]);
    });

    it("does not let the fast parent's late records move the shard's watermark", () => {
      const { b, child } = merged();
      // Late for x (below A's watermark), but far ahead of B's: on A it could not move anything.
      child.add(record(x, 4 * minute, 99), T0 + 10);
      expect(child.watermark).toBe(b.watermark);
      expect(child.add(record(y, 30_000, 5), T0 + 11).late).toEqual([]);
      // An on-time record of x moves it, as it would have moved A's.
      child.add(record(x, 6 * minute, 1), T0 + 12);
      expect(child.watermark).toBe(T0 + 6 * minute - 5000);
    });

    it('restores the floors from a snapshot of the child', () => {
      const { a, b, child } = merged();
      const restored = new WindowAggregator(settings());
      restored.restore(JSON.parse(JSON.stringify(child.snapshot())), T0 + 4);
      expectMergedBehaviour(restored, a, b, T0 + 10);
    });

    it('drops the floors once the shard watermark passes them', () => {
      const { a, child } = merged();
      expect(child.snapshot().floors).toHaveLength(1);
      // The shard's own records move its watermark past A's.
      child.add(record(y, 6 * minute, 1), T0 + 10);
      expect(child.watermark).toBeGreaterThan(a.watermark);
      child.collect(T0 + 11, false, false);
      expect(child.snapshot().floors).toEqual([]);
      expect(child.watermarkOf(x)).toBe(child.watermark);
    });
  });

  describe('the cap on open windows', () => {
    const capped = () =>
      new WindowAggregator(
        settings({
          sizes: parseWindowSizes('1m'),
          allowedLatenessMs: 10 * 3_600_000,
          maxOpenWindows: 10,
        }),
      );

    it('finalises the oldest window early when an eleventh opens; later records for it are late', () => {
      const agg = capped();
      // Ten windows, not in event-time order: the oldest (minute 0) is not the first to open.
      let now = T0;
      for (const i of [3, 7, 0, 9, 1, 5, 2, 8, 4, 6]) {
        expect(agg.add(record('c', i * minute, i), (now += 1)).closedEarly).toBe(0);
      }
      expect(agg.openWindows).toBe(10);
      expect(agg.collect((now += 1), false, false)).toEqual([]);
      expect(agg.add(record('c', 10 * minute, 10), (now += 1)).closedEarly).toBe(1);
      expect(agg.openWindows).toBe(10);
      const out = agg.collect((now += 1), false, false);
      expect(out).toEqual([
        expect.objectContaining({
          window_start: new Date(T0).toISOString(),
          final: true,
          finalised_early: true,
          record_count: 1,
        }),
      ]);
      // Before the write is confirmed, the window takes no more records.
      expect(agg.add(record('c', 1000, 50), (now += 1)).late).toEqual(['1m']);
      expect(agg.collect((now += 1), false, false)).toEqual(out);
      agg.confirm(out);
      expect(agg.collect((now += 1), false, false)).toEqual([]);
      expect(agg.add(record('c', 2000, 60), (now += 1)).late).toEqual(['1m']);
      // Also after a restart.
      const restored = capped();
      restored.restore(JSON.parse(JSON.stringify(agg.snapshot())), now);
      expect(restored.add(record('c', 3000, 70), (now += 1)).late).toEqual(['1m']);
      expect(restored.openWindows).toBe(10);
    });

    it('keeps a window finalised early closed after a restart from a snapshot taken with its write', () => {
      const agg = capped();
      let now = T0;
      for (let i = 0; i <= 10; i += 1) agg.add(record('c', i * minute, i), (now += 1));
      const written = agg.collect((now += 1), false, true);
      expect(written.filter((w) => w.final)).toEqual([
        expect.objectContaining({
          window_start: new Date(T0).toISOString(),
          finalised_early: true,
        }),
      ]);
      const restored = capped();
      restored.restore(JSON.parse(JSON.stringify(agg.snapshot({ written }))), now);
      expect(restored.add(record('c', 1000, 50), (now += 1)).late).toEqual(['1m']);
      expect(restored.collect((now += 1), false, true)).toEqual([]);
      expect(restored.openWindows).toBe(10);
    });

    it('keeps the windows of a shard at the cap after each collect and confirm', () => {
      const agg = new WindowAggregator(
        settings({
          sizes: parseWindowSizes('1m,5m'),
          allowedLatenessMs: 10 * 3_600_000,
          maxOpenWindows: 10,
        }),
      );
      let now = T0;
      let early = 0;
      for (let i = 0; i < 60; i += 1) {
        for (const city of ['a', 'b', 'c']) {
          agg.add(record(city, i * 20_000, i), (now += 1));
        }
        const out = agg.collect((now += 1), false, i % 2 === 0);
        early += out.filter((w) => w.finalised_early).length;
        expect(out.filter((w) => w.final).every((w) => w.finalised_early)).toBe(true);
        agg.confirm(out);
        expect(agg.openWindows).toBeLessThanOrEqual(10);
        expect(agg.snapshot().windows.length).toBeLessThanOrEqual(10);
      }
      expect(early).toBeGreaterThan(0);
    });

    it('does not mark a window that is already final as finalised early', () => {
      // Lateness 30 s: minute 0 is final once the watermark passes 1m30s.
      const agg = new WindowAggregator(
        settings({ sizes: parseWindowSizes('1m'), maxOpenWindows: 3 }),
      );
      agg.add(record('c', 0, 1), T0);
      agg.add(record('c', 2 * minute, 2), T0 + 1); // watermark 1m55s: minute 0 final
      agg.add(record('c', 2 * minute + 1000, 2), T0 + 2);
      agg.add(record('d', 2 * minute, 3), T0 + 3); // 3 windows: minute 0 (final), c@2, d@2
      agg.add(record('e', 2 * minute, 4), T0 + 4); // a 4th opens: one must close early
      const out = agg.collect(T0 + 5, false, false);
      const onTime = out.find((w) => w.window_start === new Date(T0).toISOString());
      expect(onTime).toMatchObject({ final: true, record_count: 1 });
      // Final on time: it was complete, so it must not be flagged as closed before its time.
      expect(onTime!.finalised_early).toBeUndefined();
    });
  });

  describe('reconcile', () => {
    const withThree = () => {
      const agg = new WindowAggregator(settings());
      agg.add(record('c', 0, 10), T0);
      agg.add(record('c', 1000, 20), T0 + 1);
      agg.add(record('c', 2000, 30), T0 + 2);
      const [partial] = agg.collect(T0 + 3, false, true);
      expect(partial).toMatchObject({ final: false, record_count: 3 });
      return { agg, partial };
    };

    it('forgets a partial the table holds as final, returns the extra records as late, and keeps them late', () => {
      const { agg, partial } = withThree();
      expect(
        agg.reconcile([{ aggregate: partial, existing: { final: true, record_count: 1 } }]),
      ).toBe(2);
      expect(agg.collect(T0 + 4, false, true)).toEqual([]);
      expect(agg.openWindows).toBe(0);
      expect(agg.add(record('c', 3000, 40), T0 + 5).late).toEqual(['5m']);
      expect(agg.collect(T0 + 6, false, true)).toEqual([]);
      const restored = new WindowAggregator(settings());
      restored.restore(JSON.parse(JSON.stringify(agg.snapshot())), T0 + 7);
      expect(restored.add(record('c', 4000, 50), T0 + 8).late).toEqual(['5m']);
      expect(restored.collect(T0 + 9, false, true)).toEqual([]);
    });

    it('keeps a partial refused for a larger one open and clean until it changes', () => {
      const { agg, partial } = withThree();
      expect(
        agg.reconcile([{ aggregate: partial, existing: { final: false, record_count: 5 } }]),
      ).toBe(0);
      expect(agg.collect(T0 + 4, false, true)).toEqual([]);
      expect(agg.openWindows).toBe(1);
      expect(agg.add(record('c', 3000, 40), T0 + 5).late).toEqual([]);
      expect(agg.collect(T0 + 6, false, true)).toEqual([
        expect.objectContaining({ final: false, record_count: 4, avg_pm25: 25 }),
      ]);
      // And it is still written as final in the end.
      agg.add(record('c', 5 * minute + 40_000, 1), T0 + 7);
      expect(agg.collect(T0 + 8, false, false)).toEqual([
        expect.objectContaining({ final: true, record_count: 4 }),
      ]);
    });

    it('counts nothing late for a final refused with the same count (a replay)', () => {
      const agg = new WindowAggregator(settings());
      agg.add(record('c', 0, 10), T0);
      agg.add(record('c', 5 * minute + 40_000, 20), T0 + 1);
      const [final] = agg.collect(T0 + 2, false, false);
      expect(final).toMatchObject({ final: true, record_count: 1 });
      expect(
        agg.reconcile([{ aggregate: final, existing: { final: true, record_count: 1 } }]),
      ).toBe(0);
      expect(agg.collect(T0 + 3, false, false)).toEqual([]);
    });
  });

  it('property: a snapshot with what was written, restored at any points, ends with the same finals', () => {
    const recordArb = fc.record({
      city: fc.constantFrom('a', 'b', 'c'),
      offset: fc.integer({ min: 0, max: 20 * minute }),
      pm25: fc.double({ min: 0, max: 1000, noNaN: true }),
      temperature: fc.double({ min: -90, max: 70, noNaN: true }),
      station: fc.constantFrom('s1', 's2', 's3'),
    });
    fc.assert(
      fc.property(
        fc.array(recordArb, { minLength: 1, maxLength: 50 }),
        fc.constantFrom(3 * minute, 20 * minute),
        fc.array(fc.integer({ min: 0, max: 4999 }), { minLength: 50, maxLength: 50 }),
        fc.array(fc.nat(49), { maxLength: 20 }),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 3 }),
        fc.boolean(),
        fc.constantFrom(4, 12, 1_000_000),
        (specs, span, delays, duplicates, cutsAt, flushPartials, maxOpenWindows) => {
          const records = specs.map((s) =>
            record(s.city, s.offset % span, s.pm25, 20, s.temperature, s.station),
          );
          const byId = new Map<string, Measurement>();
          for (const r of records) if (!byId.has(r.message_id)) byId.set(r.message_id, r);
          const distinct = [...byId.values()];
          const arrivals = [
            ...distinct,
            ...duplicates.filter((i) => i < distinct.length).map((i) => distinct[i]),
          ]
            .map((r, i) => ({ r, at: Date.parse(r.timestamp) + delays[i % delays.length] }))
            .sort((p, q) => p.at - q.at)
            .map((p) => p.r);
          const cuts = new Set(cutsAt.map((c) => Math.floor(c * arrivals.length)));
          const config = settings({ sizes: parseWindowSizes('1m,5m'), maxOpenWindows });

          // At each cut, write what collect returns: either confirmed in place (uninterrupted), or
          // saved in a snapshot taken with it and restored into a new aggregator (a restart).
          const run = (interrupt: boolean) => {
            let agg = new WindowAggregator(config);
            let now = T0;
            const late: string[][] = [];
            const all: Aggregate[] = [];
            for (let i = 0; i <= arrivals.length; i += 1) {
              if (cuts.has(i)) {
                const written = agg.collect(now, false, flushPartials);
                all.push(...written.filter((a) => a.final));
                if (interrupt) {
                  const snapshot = JSON.parse(JSON.stringify(agg.snapshot({ written })));
                  agg = new WindowAggregator(config);
                  agg.restore(snapshot, now);
                } else {
                  agg.confirm(written);
                }
              }
              if (i < arrivals.length) late.push(agg.add(arrivals[i], (now += 1)).late);
            }
            all.push(...agg.collect(now + 10 * 3_600_000, true, false));
            expect(new Set(all.map(keyOf)).size).toBe(all.length); // nothing written twice
            return { finals: new Map(all.map((a) => [keyOf(a), a])), late };
          };

          const straight = run(false);
          const interrupted = run(true);
          expect(interrupted.finals).toEqual(straight.finals);
          expect(interrupted.late).toEqual(straight.late);
          if (maxOpenWindows === 1_000_000) {
            // Without the cap, collecting in between changes nothing either.
            expect(straight.finals).toEqual(finals(new WindowAggregator(config), arrivals));
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('property: a full state and the changes saved after it restore to the state a full snapshot holds', () => {
    const stepArb = fc.record({
      city: fc.constantFrom('a', 'b', 'c', 'd'),
      offset: fc.integer({ min: 0, max: 12 * minute }),
      pm25: fc.double({ min: 0, max: 1000, noNaN: true }),
      duplicate: fc.boolean(),
      // After the record: nothing, or collect and save a full state, the changes, or a save
      // whose commit failed (neither confirmed nor saved).
      save: fc.constantFrom('none', 'none', 'full', 'changes', 'changes', 'failed'),
      flushPartials: fc.boolean(),
    });
    const canonical = (snapshot: unknown) => {
      const s = JSON.parse(JSON.stringify(snapshot)) as {
        windows: [string, string, string, number, ...unknown[]][];
        closed: [string][];
      };
      const ids = (row: unknown[]) => String(row[10]).match(/.{16}/g)?.sort() ?? [];
      return {
        ...s,
        windows: s.windows
          .map((row) => [...row.slice(0, 10), ids(row), row[11]])
          .sort((p, q) => `${p[0]}|${p[1]}|${p[3]}`.localeCompare(`${q[0]}|${q[1]}|${q[3]}`)),
        closed: [...s.closed].sort((p, q) => p[0].localeCompare(q[0])),
      };
    };
    fc.assert(
      fc.property(
        fc.array(stepArb, { minLength: 1, maxLength: 60 }),
        fc.constantFrom(4, 1_000_000),
        (steps, maxOpenWindows) => {
          const config = settings({ sizes: parseWindowSizes('1m,5m'), maxOpenWindows });
          const agg = new WindowAggregator(config);
          let log: unknown[] = [];
          let now = T0;
          let previous: Measurement | undefined;
          for (const step of steps) {
            const m =
              step.duplicate && previous
                ? previous
                : record(step.city, step.offset, step.pm25, 20, 10, 's1');
            previous = m;
            agg.add(m, (now += 1000));
            if (step.save === 'none') continue;
            const written = agg.collect(now, false, step.flushPartials);
            const changes = agg.delta({ written });
            const full = step.save === 'full' || !changes;
            const segment = JSON.parse(
              JSON.stringify(full ? agg.snapshot({ written }) : changes),
            ) as unknown;
            if (step.save === 'failed') continue;
            agg.confirm(written);
            agg.stateSaved();
            log = full ? [segment] : [...log, segment];
            const restored = new WindowAggregator(config);
            restored.restore(log, now);
            expect(canonical(restored.snapshot())).toEqual(canonical(agg.snapshot()));
            expect(restored.openWindows).toBe(agg.openWindows);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('saves only what changed: the changed windows with their new ids, and the windows gone', () => {
    const agg = new WindowAggregator(settings());
    agg.add(record('a', 0, 10), T0);
    agg.add(record('b', 0, 10), T0);
    expect(agg.delta()).toBeUndefined(); // nothing saved yet: a full state comes first
    agg.confirm(agg.collect(T0, false, true));
    agg.stateSaved();
    const m = record('a', 1000, 30);
    agg.add(m, T0 + 1);
    const changes = agg.delta()!;
    expect(changes.windows.map((w) => [w[1], w[5], w[10]])).toEqual([['a', 2, m.message_id]]);
    expect(changes.gone).toEqual([]);
    agg.confirm([]);
    agg.stateSaved();
    // Both windows final and written: they leave the state.
    const written = agg.collect(T0 + 10 * 3_600_000, true, false);
    expect(agg.delta({ written })!.gone!.sort()).toEqual([`5m|a|${T0}`, `5m|b|${T0}`]);
  });
});
