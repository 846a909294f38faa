import { ListShardsCommand, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { createHash } from 'node:crypto';
import { Sent } from './support/oracle';
import { consumerHealth, ServiceProcess, spawnService } from './support/service-process';
import { waitUntilConsumed } from './support/stream';
import { eventually, isolatedEnv, startApp, TestApp } from './support/test-app';
import { injectWireFaults } from './support/wire-faults';

/**
 * One lease whose commit hangs (a TransactWriteItems held at the HTTP handler of the app's own
 * DynamoDB client until the end): renewals run apart from commits, so every lease
 * of the instance, the hung one included, keeps being renewed, and no other instance can take
 * it as expired.
 */
const FAILOVER_MS = 2000;
const BASE = Date.UTC(2026, 0, 10, 9, 0, 0);
const shard = (n: number) => `shardId-${String(n).padStart(12, '0')}`;
const hashOf = (key: string) => BigInt(`0x${createHash('md5').update(key).digest('hex')}`);

interface LeaseRow {
  leaseKey: string;
  leaseOwner: string | null;
  leaseCounter: number;
  leaseEpoch: number;
  checkpoint?: string;
}

async function leaseRows(t: TestApp): Promise<Map<string, LeaseRow>> {
  const { Items = [] } = await t.db.send(
    new ScanCommand({ TableName: t.config.tables.leases, ConsistentRead: true }),
  );
  return new Map(
    Items.filter((i) => String(i.leaseKey).startsWith('shardId-')).map((i) => [
      i.leaseKey as string,
      i as LeaseRow,
    ]),
  );
}

/** The lease-table keys a TransactWriteItems input fences or updates (plain or marshalled). */
function leaseKeysOf(input: unknown, leaseTable: string): string[] {
  const items = (input as { TransactItems?: Record<string, unknown>[] }).TransactItems ?? [];
  const keys: string[] = [];
  for (const item of items) {
    for (const op of [item.Update, item.ConditionCheck] as
      { TableName?: string; Key?: { leaseKey?: unknown } }[] | undefined[]) {
      if (op?.TableName !== leaseTable) continue;
      const key = op.Key?.leaseKey;
      keys.push(typeof key === 'string' ? key : String((key as { S?: string })?.S));
    }
  }
  return keys;
}

describe('lease renewal while one lease’s commit hangs (DynamoDB Local, a second instance)', () => {
  const env = isolatedEnv({
    KINESIS_SHARD_COUNT: '3',
    LEASE_FAILOVER_MS: String(FAILOVER_MS),
    AGGREGATION_WINDOWS: '1m',
    AGGREGATION_FLUSH_MS: '200',
  });
  let t: TestApp;
  let second: ServiceProcess | undefined;
  let release: (() => void) | undefined;
  let stopHanging: (() => void) | undefined;

  beforeAll(async () => {
    t = await startApp(env);
  });
  afterAll(async () => {
    release?.();
    stopHanging?.();
    await second?.kill('SIGKILL');
    await t?.close();
  });

  it('keeps renewing every lease, the hung one included; another instance never finds it expired', async () => {
    const owner = await eventually(async () => {
      const rows = await leaseRows(t);
      const owners = new Set([...rows.values()].map((r) => r.leaseOwner));
      return rows.size === 3 && owners.size === 1 && !owners.has(null)
        ? [...owners][0]!
        : undefined;
    }, 'the instance holding the three leases');

    // A second instance balances by taking the first lease of the most loaded owner in scan
    // order: hang another one, so any change of the hung lease's owner would be an expiry.
    const order = [...(await leaseRows(t)).keys()];
    const hung = order.indexOf(shard(1)) > 0 ? shard(1) : order[1];

    const gate = new Promise<void>((resolve) => (release = resolve));
    let hungCalls = 0;
    // The hung lease's commits are held until the end of the test (sent by the app directly or
    // through the SDK alike: the rule sits at the client's HTTP handler).
    stopHanging = injectWireFaults(t.dynamoDb, ({ operation, input }) => {
      if (operation !== 'TransactWriteItems') return undefined;
      if (!leaseKeysOf(input, t.config.tables.leases).includes(hung)) return undefined;
      hungCalls += 1;
      return { after: gate };
    });

    // Records for every shard (cities chosen by the hash ranges), so every shard commits.
    const { Shards = [] } = await t.kinesis.send(
      new ListShardsCommand({ StreamName: t.config.stream.name }),
    );
    const cities = Shards.map((s) => {
      const [start, end] = [
        BigInt(s.HashKeyRange!.StartingHashKey!),
        BigInt(s.HashKeyRange!.EndingHashKey!),
      ];
      for (let i = 0; ; i++) {
        const h = hashOf(`rn-city-${i}`);
        if (h >= start && h <= end) return { shard: s.ShardId!, city: `rn-city-${i}` };
      }
    });
    const records: Sent[] = cities.flatMap(({ city }) =>
      Array.from({ length: 10 }, (_, i) => ({
        city_id: city,
        city_name: `City ${city}`,
        timestamp: new Date(BASE + i * 1000).toISOString(),
        pm25_value: 10 + i,
        pm10_value: 40 + i,
        temperature_c: 20,
        station_id: 'st-1',
      })),
    );
    const out = await t.kinesis.send(
      new PutRecordsCommand({
        StreamName: t.config.stream.name,
        Records: records.map((r) => ({
          PartitionKey: r.city_id,
          Data: Buffer.from(JSON.stringify(r)),
        })),
      }),
    );
    expect(new Set(out.Records!.map((r) => r.ShardId))).toEqual(
      new Set([shard(0), shard(1), shard(2)]),
    );
    await eventually(
      async () => (hungCalls > 0 ? true : undefined),
      `a commit of ${hung} hanging`,
      90_000,
    );
    const atHang = await leaseRows(t);

    /**
     * Polls the lease table until `spanMs` has passed and every lease's counter moved at least
     * `minMoves` times; returns the time observed. Fails at once when an owner or epoch changes,
     * a counter goes back or stands still for a failover time, or the hung checkpoint moves.
     */
    const observe = async (spanMs: number, minMoves: number) => {
      const started = Date.now();
      let last = await leaseRows(t);
      const changedAt = new Map([...last.keys()].map((k) => [k, started]));
      const moves = new Map([...last.keys()].map((k) => [k, 0]));
      const violations: string[] = [];
      for (;;) {
        await new Promise((resolve) => setTimeout(resolve, 50)); // the polling interval
        const now = Date.now();
        const rows = await leaseRows(t);
        for (const [key, row] of rows) {
          const before = last.get(key)!;
          const fixed = atHang.get(key)!;
          if (row.leaseOwner !== fixed.leaseOwner || row.leaseEpoch !== fixed.leaseEpoch)
            violations.push(
              `${key}: owner/epoch ${fixed.leaseOwner}/${fixed.leaseEpoch} -> ${row.leaseOwner}/${row.leaseEpoch}`,
            );
          if (row.leaseCounter < before.leaseCounter)
            violations.push(`${key}: counter went back to ${row.leaseCounter}`);
          if (row.leaseCounter > before.leaseCounter) {
            moves.set(key, moves.get(key)! + 1);
            changedAt.set(key, now);
          }
          // Still for a failover time is what another instance calls expired.
          if (now - changedAt.get(key)! >= FAILOVER_MS)
            violations.push(`${key}: counter still for ${now - changedAt.get(key)!} ms`);
        }
        if (rows.get(hung)!.checkpoint !== atHang.get(hung)!.checkpoint)
          violations.push(`${hung}: checkpoint moved during the hang`);
        last = rows;
        if (violations.length > 0) break;
        if (now - started > spanMs && [...moves.values()].every((n) => n >= minMoves)) break;
        if (now - started > spanMs + 60_000) {
          violations.push(`counters moved ${JSON.stringify([...moves])} in ${now - started} ms`);
          break;
        }
      }
      expect(violations).toEqual([]);
      return Date.now() - started;
    };
    // Alone: over more than 3 × failover, every counter keeps moving, none stands still for a
    // failover time (what another instance would call expired), and no owner or epoch changes.
    expect(await observe(3.5 * FAILOVER_MS, 6)).toBeGreaterThan(3 * FAILOVER_MS);
    expect(hungCalls).toBe(1);

    // A second instance during the hang: it may take one lease by balancing (a graceful steal),
    // never the hung one, and no lease expires.
    second = await spawnService(env);
    const stolen = await eventually(
      async () => {
        if ((await consumerHealth(second!)).leases_held !== 1) return undefined;
        const rows = await leaseRows(t);
        return [...rows.values()].find((r) => r.leaseOwner !== owner)?.leaseKey;
      },
      'the second instance holding one lease',
      60_000,
    );
    expect(stolen).not.toBe(hung);
    // From now on the stolen lease stays with the second instance, the others with the first.
    atHang.set(stolen, (await leaseRows(t)).get(stolen)!);
    expect(await observe(3.5 * FAILOVER_MS, 6)).toBeGreaterThan(3 * FAILOVER_MS);
    expect((await consumerHealth(second)).leases_held).toBe(1);
    const duringHang = await leaseRows(t);
    expect(duringHang.get(hung)).toMatchObject({
      leaseOwner: owner,
      leaseEpoch: atHang.get(hung)!.leaseEpoch,
    });

    // Released: the hung commit lands, every record is stored and every checkpoint at the end.
    release!();
    await waitUntilConsumed(t);
    for (const { city } of cities) {
      const res = await eventually(async () => {
        const r = await t.http.get(`/cities/${city}/latest?limit=100`);
        return r.status === 200 && r.body.items.length === 10 ? r : undefined;
      }, `the records of ${city}`);
      expect(res.body.items).toHaveLength(10);
    }
    expect((await leaseRows(t)).get(hung)).toMatchObject({
      leaseOwner: owner,
      leaseEpoch: atHang.get(hung)!.leaseEpoch,
    });
  }, 240_000);
});
