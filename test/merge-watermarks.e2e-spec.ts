import { ListShardsCommand, MergeShardsCommand } from '@aws-sdk/client-kinesis';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import {
  aggregatesOf,
  aggregateTableItems,
  allFinal,
  compareWithOracle,
  expected,
  putOnStream,
  Sent,
} from './support/oracle';
import { waitUntilConsumed } from './support/stream';
import { eventually, isolatedEnv, startApp, TestApp } from './support/test-app';

/**
 * After a merge, a city keeps the watermark of the parent it came from. The fast parent's cities
 * have windows that are already final; records for them that arrive in the child are late there
 * too (counted, stored raw, never aggregated), while the slow parent's cities keep their slower
 * watermark, so their open windows still take on-time records.
 */
const BASE = Date.UTC(2026, 0, 8, 12, 0, 0);
const MIN = 60_000;
const OUT_OF_ORDERNESS = 1000;
const LATENESS = 2000;
const SIZES: [string, number][] = [
  ['1m', MIN],
  ['5m', 5 * MIN],
];
const shard = (n: number) => `shardId-${String(n).padStart(12, '0')}`;

/** Kinesis maps a partition key to the MD5 of its bytes (computed here apart from the service). */
const hashOf = (key: string) => BigInt(`0x${createHash('md5').update(key).digest('hex')}`);

let serial = 0;
function record(city: string, at: number, station: string): Sent {
  serial += 1;
  return {
    city_id: city,
    city_name: `City ${city}`,
    timestamp: new Date(at).toISOString(),
    pm25_value: Math.round(((serial * 37) % 500) * 10) / 10 + 0.5,
    pm10_value: (serial * 53) % 900,
    temperature_c: ((serial * 7) % 60) - 20 + 0.1 * (serial % 3),
    station_id: station,
  };
}

const byTime = (records: Sent[]) =>
  [...records].sort((a, b) => Date.parse(a.timestamp) - Date.parse(b.timestamp));

/** Puts `records` in this order and returns the shard each one went to. */
const put = async (t: TestApp, records: Sent[]) =>
  (await putOnStream(t, records)).map((r) => r.ShardId!);

async function lateRecordsCounted(t: TestApp): Promise<number> {
  const metrics = await t.http.get('/metrics').expect(200);
  const value = /^aq_late_records_total (\d+)/m.exec(metrics.text)?.[1];
  if (value === undefined) throw new Error('aq_late_records_total missing from /metrics');
  return Number(value);
}

async function leaseItems(t: TestApp): Promise<Map<string, Record<string, unknown>>> {
  const { Items = [] } = await t.db.send(
    new ScanCommand({ TableName: t.config.tables.leases, ConsistentRead: true }),
  );
  return new Map(
    Items.filter((i) => String(i.leaseKey).startsWith('shardId-')).map((i) => [
      i.leaseKey as string,
      i,
    ]),
  );
}

/** True once every record of `records` is in the speed layer (by timestamp and station). */
async function allStored(t: TestApp, records: Sent[]): Promise<true | undefined> {
  for (const city of new Set(records.map((r) => r.city_id))) {
    const res = await t.http.get(`/cities/${city}/latest?limit=100`);
    if (res.status !== 200) return undefined;
    const stored = new Set((res.body.items as Sent[]).map((m) => `${m.timestamp}|${m.station_id}`));
    const want = records.filter((r) => r.city_id === city);
    if (want.length > 100) throw new Error(`${city}: more records than one page holds`);
    if (!want.every((r) => stored.has(`${r.timestamp}|${r.station_id}`))) return undefined;
  }
  return true;
}

const ENV = {
  KINESIS_SHARD_COUNT: '2',
  LEASE_FAILOVER_MS: '3000',
  AGGREGATION_WINDOWS: SIZES.map(([w]) => w).join(','),
  AGGREGATION_OUT_OF_ORDERNESS_MS: String(OUT_OF_ORDERNESS),
  AGGREGATION_ALLOWED_LATENESS_MS: String(LATENESS),
  // Idleness never moves a watermark during the test: only records do.
  AGGREGATION_IDLE_MS: '600000',
  AGGREGATION_FLUSH_MS: '200',
};

interface Merged {
  fast: string[];
  slow: string[];
  fastStart: number;
  /** Every record put before the merge. */
  pre: Sent[];
  slowPre: Sent[];
  /** The fast cities' final windows in the table just before the late records. */
  finalsBefore: Map<string, Record<string, unknown>>;
  lateBefore: number;
  /** For the fast cities, in windows final on their parent (not yet put). */
  late: Sent[];
  /** For the slow cities, in windows still open on their parent (not yet put). */
  slowPost: Sent[];
}

/**
 * Two parents an hour apart in event time, merged: the fast parent (shard 0) has final windows,
 * the slow one (shard 1) open windows; returns once the child (shard 2) is being read.
 */
async function mergeFastAndSlow(t: TestApp, prefix: string): Promise<Merged> {
  const { Shards = [] } = await t.kinesis.send(
    new ListShardsCommand({ StreamName: t.config.stream.name }),
  );
  const citiesOn = (id: string, name: string) => {
    const range = Shards.find((x) => x.ShardId === id)!.HashKeyRange!;
    const [start, end] = [BigInt(range.StartingHashKey!), BigInt(range.EndingHashKey!)];
    const found: string[] = [];
    for (let i = 0; found.length < 2; i++) {
      const h = hashOf(`${prefix}-${name}-${i}`);
      if (h >= start && h <= end) found.push(`${prefix}-${name}-${i}`);
    }
    return found;
  };
  const fast = citiesOn(shard(0), 'fast');
  const slow = citiesOn(shard(1), 'slow');

  // The fast parent runs an hour ahead: 10 minutes of data from BASE+60m, so its early windows
  // turn final by event time; the slow parent has 3 minutes from BASE, its last windows open.
  // The watermark is per shard: each shard's records go in event-time order, cities interleaved.
  const fastStart = BASE + 60 * MIN;
  const fastPre = byTime(
    fast.flatMap((c) =>
      Array.from({ length: 40 }, (_, i) => record(c, fastStart + i * 15_000, `pre-${i % 4}`)),
    ),
  );
  const slowPre = byTime(
    slow.flatMap((c) =>
      Array.from({ length: 12 }, (_, i) => record(c, BASE + i * 15_000, `pre-${i % 4}`)),
    ),
  );
  const routed = await put(t, [...fastPre, ...slowPre]);
  expect(new Set(routed.slice(0, fastPre.length))).toEqual(new Set([shard(0)]));
  expect(new Set(routed.slice(fastPre.length))).toEqual(new Set([shard(1)]));

  // The fast windows that are final by the fast parent's watermark, as the oracle sees them.
  const fastWatermark = Math.max(...fastPre.map((r) => Date.parse(r.timestamp))) - OUT_OF_ORDERNESS;
  const fastFinalWanted = SIZES.flatMap(([w, ms]) =>
    expected(fastPre, w, ms).filter(
      (e) => Date.parse(e.window_start) + ms + LATENESS <= fastWatermark,
    ),
  );
  expect(fastFinalWanted).toHaveLength(2 * (9 + 1)); // per city: 9 one-minute windows, one 5m
  const fastFinalGot = await eventually(
    async () => {
      const got = await aggregatesOf(
        t,
        fast,
        SIZES.map(([w]) => w),
        fastStart,
      );
      const finals = got.filter((a) => a.final === true);
      return finals.length === fastFinalWanted.length ? finals : undefined;
    },
    "the fast cities' early windows final",
    90_000,
  );
  compareWithOracle(fastFinalGot, fastFinalWanted);

  // Merge; both parents are read to SHARD_END, then the child is taken (discovery: ≤ 10 s).
  await t.kinesis.send(
    new MergeShardsCommand({
      StreamName: t.config.stream.name,
      ShardToMerge: shard(0),
      AdjacentShardToMerge: shard(1),
    }),
  );
  await eventually(
    async () => {
      const leases = await leaseItems(t);
      return leases.get(shard(0))?.checkpoint === 'SHARD_END' &&
        leases.get(shard(1))?.checkpoint === 'SHARD_END' &&
        leases.get(shard(2))?.leaseOwner
        ? true
        : undefined;
    },
    'both parents at SHARD_END and the child shard taken',
    90_000,
  );
  const lateBefore = await lateRecordsCounted(t);
  const finalsBefore = new Map(
    [...(await aggregateTableItems(t))].filter(
      ([, a]) => fast.includes(a.city_id as string) && a.final === true,
    ),
  );
  expect(finalsBefore.size).toBe(fastFinalWanted.length);

  // Late records for the fast cities, in windows final on their parent: for the first city
  // more records than the final counts (the old code replaced the final with them), for the
  // second fewer (the old code lost them: neither aggregated nor counted late).
  const finalCount = (city: string, start: number) =>
    fastFinalWanted.find(
      (e) => e.window === '1m' && e.city_id === city && Date.parse(e.window_start) === start,
    )!.record_count;
  const replaceStart = fastStart + MIN;
  const shrinkStart = fastStart + 2 * MIN;
  const late = [
    ...Array.from({ length: finalCount(fast[0], replaceStart) + 2 }, (_, i) =>
      record(fast[0], replaceStart + i * 5_000 + 1_000, `late-${i}`),
    ),
    ...Array.from({ length: finalCount(fast[1], shrinkStart) - 2 }, (_, i) =>
      record(fast[1], shrinkStart + i * 5_000 + 1_000, `late-${i}`),
    ),
  ];
  // On-time records for the slow cities: their windows from BASE+2m are still open.
  const slowPost = byTime(
    slow.flatMap((c) =>
      Array.from({ length: 8 }, (_, i) =>
        record(c, BASE + 2 * MIN + 7_000 + i * 20_000, `post-${i}`),
      ),
    ),
  );
  return {
    fast,
    slow,
    fastStart,
    pre: [...fastPre, ...slowPre],
    slowPre,
    finalsBefore,
    lateBefore,
    late,
    slowPost,
  };
}

/**
 * Puts the post-merge records in `order`, then one slow-city record at BASE+66m that moves the
 * child's own watermark past every window above (the slow windows turn final without idleness;
 * the old code finalised the reopened fast windows with it); waits until all is consumed.
 */
async function putAfterMerge(t: TestApp, m: Merged, order: Sent[][]): Promise<Sent> {
  for (const records of order) expect(new Set(await put(t, records))).toEqual(new Set([shard(2)]));
  const pusher = record(m.slow[0], BASE + 66 * MIN, 'push');
  expect(await put(t, [pusher])).toEqual([shard(2)]);
  await eventually(
    () => allStored(t, [...m.pre, ...m.late, ...m.slowPost, pusher]),
    'every record stored raw in the speed layer',
    90_000,
  );
  await waitUntilConsumed(t);
  return pusher;
}

/** The slow cities' windows once final with every pre- and post-merge record, as the oracle. */
async function expectSlowWindowsComplete(t: TestApp, m: Merged, timeoutMs = 90_000) {
  const slowResult = await eventually(
    () => allFinal(t, [...m.slowPre, ...m.slowPost], SIZES, BASE),
    "the slow cities' windows final with every record",
    timeoutMs,
  );
  compareWithOracle(slowResult.got, slowResult.want);
}

/** The fast finals untouched (whole items) and exactly the late records counted as late. */
async function expectFastFinalsKept(t: TestApp, m: Merged): Promise<void> {
  const itemsAfter = await aggregateTableItems(t);
  const rewritten = [...m.finalsBefore.keys()].filter(
    (k) => !isDeepStrictEqual(itemsAfter.get(k), m.finalsBefore.get(k)),
  );
  expect({
    finalsRewritten: rewritten,
    lateRecordsCounted: (await lateRecordsCounted(t)) - m.lateBefore,
  }).toEqual({ finalsRewritten: [], lateRecordsCounted: m.late.length });
  for (const [key, item] of m.finalsBefore) expect(itemsAfter.get(key)).toEqual(item);
  // No new final for a fast city: its open windows stay open on the fast watermark.
  expect(
    [...itemsAfter.values()].filter(
      (a) => m.fast.includes(a.city_id as string) && a.final === true,
    ),
  ).toHaveLength(m.finalsBefore.size);
}

describe('watermarks after a merge (MergeShards on kinesalite, one instance)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp(isolatedEnv(ENV));
  });
  afterAll(() => t?.close());

  it("keeps a final window final in the child: the fast parent's late records stay late, the slow parent's open windows still fill", async () => {
    const m = await mergeFastAndSlow(t, 'mw');
    await putAfterMerge(t, m, [m.slowPost, m.late]);
    await expectSlowWindowsComplete(t, m);
    await expectFastFinalsKept(t, m);
  }, 240_000);
});

/**
 * The late records first: on its parent such a record could never move the watermark, so on the
 * child it must not either (it would close the slow parent's open windows an hour early).
 */
describe('watermarks after a merge: late records from the fast parent first', () => {
  let t: TestApp;
  let m: Merged;
  beforeAll(async () => {
    t = await startApp(isolatedEnv(ENV));
  });
  afterAll(() => t?.close());

  it('stores every record and keeps the fast finals', async () => {
    m = await mergeFastAndSlow(t, 'mwl');
    await putAfterMerge(t, m, [m.late, m.slowPost]);
    const itemsAfter = await aggregateTableItems(t);
    for (const [key, item] of m.finalsBefore) expect(itemsAfter.get(key)).toEqual(item);
  }, 240_000);

  it("the slow parent's open windows still take its on-time records", async () => {
    expect(m).toBeDefined();
    // Everything is consumed: the finals were committed with the last checkpoint.
    await expectSlowWindowsComplete(t, m, 10_000);
    await expectFastFinalsKept(t, m);
  }, 120_000);
});
