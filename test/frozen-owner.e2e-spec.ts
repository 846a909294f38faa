import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { consumerHealth, spawnService, ServiceProcess } from './support/service-process';
import {
  aggregateTableItems,
  allFinal,
  compareWithOracle,
  dataset,
  putOnStream,
  Sent,
} from './support/oracle';
import { checkpoints } from './support/stream';
import { eventually, isolatedEnv, startApp, TestApp } from './support/test-app';

const BASE = Date.UTC(2026, 0, 6, 10, 0, 0);
const SIZES: [string, number][] = [
  ['1m', 60_000],
  ['5m', 300_000],
];
const CITIES = Array.from({ length: 6 }, (_, i) => `frozen-city-${i}`);

async function leaseOwners(t: TestApp): Promise<Set<string>> {
  const { Items = [] } = await t.db.send(
    new ScanCommand({ TableName: t.config.tables.leases, ConsistentRead: true }),
  );
  return new Set(
    Items.filter((i) => String(i.leaseKey).startsWith('shardId-')).map((i) => i.leaseOwner),
  );
}

describe('a frozen owner (SIGSTOP) that wakes after its leases moved (child processes, real emulators)', () => {
  const env = isolatedEnv({
    KINESIS_SHARD_COUNT: '2',
    LEASE_FAILOVER_MS: '2000',
    AGGREGATION_WINDOWS: '1m,5m',
    AGGREGATION_OUT_OF_ORDERNESS_MS: '1000',
    AGGREGATION_ALLOWED_LATENESS_MS: '2000',
    AGGREGATION_IDLE_MS: '1000',
    // Partials are written every 2 s, so between two flushes the owner holds changed windows.
    AGGREGATION_FLUSH_MS: '2000',
  });
  let t: TestApp;

  beforeAll(async () => {
    t = await startApp({ ...env, CONSUMER_ENABLED: 'false' });
  });
  afterAll(() => t?.close());

  it('writes nothing after waking: every window equals the oracle and every final is unchanged', async () => {
    const records = dataset(360, { base: BASE, cities: CITIES });
    const a = await spawnService(env);
    let b: ServiceProcess | undefined;
    try {
      await eventually(
        async () => ((await consumerHealth(a)).leases_held === 2 ? true : undefined),
        'the first instance holding both leases',
      );
      // Feed the first 60 % chunk by chunk; freeze the owner once it has processed records that
      // it has not committed yet (stored in the speed layer, past its checkpoint).
      const firstPart = records.slice(0, 216);
      let sent = 0;
      let frozenWithChanges = false;
      while (!frozenWithChanges && sent < firstPart.length) {
        const chunk = firstPart.slice(sent, sent + 12);
        sent += chunk.length;
        const landed = await putOnStream(t, chunk);
        const last = chunk[chunk.length - 1];
        await eventually(async () => {
          const r = await t.http.get(`/cities/${last.city_id}/latest?limit=100`);
          return r.body.items?.some((m: Sent) => m.timestamp === last.timestamp) ? true : undefined;
        }, 'the chunk stored');
        if (sent < 168) continue; // 7 minutes in: some windows final, some open
        a.child.kill('SIGSTOP');
        const marks = await checkpoints(t.db, t.config);
        const processed = new Map<string, bigint>();
        for (const r of landed) {
          const seq = BigInt(r.SequenceNumber!);
          if (seq > (processed.get(r.ShardId!) ?? 0n)) processed.set(r.ShardId!, seq);
        }
        frozenWithChanges = [...processed].some(
          ([shard, seq]) => marks[shard] === undefined || BigInt(marks[shard]!) < seq,
        );
        if (!frozenWithChanges) a.child.kill('SIGCONT');
      }
      expect(frozenWithChanges).toBe(true);
      const shardsHeld = Object.keys(await checkpoints(t.db, t.config)).filter((k) =>
        k.startsWith('shardId-'),
      );
      expect(shardsHeld).toHaveLength(2);

      // Another instance takes over, reads the rest (with duplicates) and finalises every window.
      // Read before the second instance starts: under load it can take the leases before it
      // reports itself started, and its own id would then be taken for the frozen owner's.
      const ownersBefore = await leaseOwners(t);
      expect(ownersBefore.size).toBe(1);
      const [ownerA] = ownersBefore;
      b = await spawnService(env);
      await withLogs(
        eventually(async () => {
          const owners = await leaseOwners(t);
          return owners.size === 1 && !owners.has(ownerA) ? true : undefined;
        }, 'the second instance holding both leases'),
        { 'the frozen instance': a, 'the second instance': b },
      );
      await putOnStream(t, [...records.slice(sent), ...records.slice(100, 140)]);
      const { got, want } = await eventually(
        () => allFinal(t, records, SIZES, BASE),
        'every window final after the takeover',
        90_000,
      );
      compareWithOracle(got, want);
      const finals = await aggregateTableItems(t);

      // The frozen owner wakes: it must learn from the table that it lost both leases. (It may
      // then rejoin and take one back by balancing, so its lease count is no signal: its log is.)
      a.child.kill('SIGCONT');
      const lost = (shard: string) =>
        a.logs.some(
          (line) =>
            line.includes(`${shard}: lease taken by another instance`) ||
            line.includes(`lease of ${shard} is no longer ours`),
        );
      await eventually(
        async () => (shardsHeld.every(lost) ? true : undefined),
        'the woken instance learning it lost both leases',
      );
      expect(await a.kill('SIGTERM')).toBe(0);
      const after = await aggregateTableItems(t);
      expect(after).toEqual(finals);
      const again = await allFinal(t, records, SIZES, BASE);
      compareWithOracle(again!.got, again!.want);
    } finally {
      a.child.kill('SIGCONT');
      await a.kill('SIGKILL');
      await b?.kill('SIGKILL');
    }
  }, 180_000);
});

/** `pending`; if it fails, with the last log lines of the instances, to see why. */
async function withLogs<T>(
  pending: Promise<T>,
  instances: Record<string, ServiceProcess>,
): Promise<T> {
  try {
    return await pending;
  } catch (error) {
    const tails = Object.entries(instances).map(
      ([name, p]) => `${name}:\n${p.logs.slice(-40).join('\n')}`,
    );
    throw new Error([(error as Error).message, ...tails].join('\n\n'));
  }
}
