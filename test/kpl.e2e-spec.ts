import { ListShardsCommand, PutRecordCommand } from '@aws-sdk/client-kinesis';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { partitionHash } from '../src/aggregation/hash-range';
import { kplAggregate, KplUserRecord, withBadMd5 } from './support/kpl';
import {
  aggregateTableItems,
  allFinal,
  compareWithOracle,
  dataset,
  putOnStream,
  Sent,
} from './support/oracle';
import { ServiceProcess, spawnService } from './support/service-process';
import { waitUntilConsumed } from './support/stream';
import { eventually, isolatedEnv, startApp, TestApp } from './support/test-app';

const BASE = Date.UTC(2026, 0, 8, 10, 0, 0);
const SIZES: [string, number][] = [
  ['1m', 60_000],
  ['5m', 300_000],
];
const AGGREGATION = {
  AGGREGATION_WINDOWS: '1m,5m',
  AGGREGATION_OUT_OF_ORDERNESS_MS: '1000',
  AGGREGATION_ALLOWED_LATENESS_MS: '2000',
  AGGREGATION_IDLE_MS: '1000',
};

const asUser = (r: Sent, partitionKey = r.city_id): KplUserRecord => ({
  partitionKey,
  data: JSON.stringify(r),
});

async function putRecord(t: TestApp, data: Uint8Array, key: string, explicitHashKey?: string) {
  const out = await t.kinesis.send(
    new PutRecordCommand({
      StreamName: t.config.stream.name,
      PartitionKey: key,
      ExplicitHashKey: explicitHashKey,
      Data: data,
    }),
  );
  return out.SequenceNumber!;
}

async function scan(t: TestApp, table: string): Promise<Record<string, unknown>[]> {
  const { Items = [] } = await t.db.send(
    new ScanCommand({ TableName: table, ConsistentRead: true }),
  );
  return Items;
}

async function storedIds(t: TestApp, city: string): Promise<string[]> {
  const r = await t.http.get(`/cities/${city}/latest?limit=100`);
  return r.status === 200 ? r.body.items.map((m: Sent) => `${m.station_id}|${m.timestamp}`) : [];
}

describe('KPL aggregated records (real emulators)', () => {
  it('de-aggregates them next to plain records: every user record stored, aggregates equal the oracle, a corrupt aggregate dead-lettered whole', async () => {
    const t = await startApp(
      isolatedEnv({ KINESIS_SHARD_COUNT: '2', ...AGGREGATION, AGGREGATION_FLUSH_MS: '200' }),
    );
    try {
      const cities = Array.from({ length: 6 }, (_, i) => `kpl-city-${i}`);
      const records = dataset(150, { base: BASE, cities });
      // Keyed by a station, not by its city: stored, left out of the city's windows.
      const offKey = { ...records[1], station_id: 'st-off-key', pm25_value: 999 };
      const poison: KplUserRecord = {
        partitionKey: 'kpl-poison-key',
        data: 'not json, in an aggregate',
      };
      const poisonIndex = 3;
      const corruptData = withBadMd5(
        kplAggregate(
          dataset(3, { base: BASE, cities: ['kpl-corrupt-city'] }).map((r) => asUser(r)),
        ),
      );

      // Each shard's records in event-time order, in runs of 10 that alternate between plain
      // records and a KPL aggregate sent, as the KPL does, to the shard's hash key.
      const { Shards = [] } = await t.kinesis.send(
        new ListShardsCommand({ StreamName: t.config.stream.name }),
      );
      const inShard = (city: string, s: (typeof Shards)[number]) =>
        partitionHash(city) >= BigInt(s.HashKeyRange!.StartingHashKey!) &&
        partitionHash(city) <= BigInt(s.HashKeyRange!.EndingHashKey!);
      let inAggregates = 0;
      for (const [n, shard] of Shards.entries()) {
        const own = records.filter((r) => inShard(r.city_id, shard));
        for (let i = 0; i < own.length; i += 10) {
          const run = own.slice(i, i + 10);
          if ((i / 10) % 2 === 0) {
            await putOnStream(t, run);
            continue;
          }
          const users = run.map((r) => asUser(r));
          if (n === 0 && i === 10) users.splice(poisonIndex, 0, poison, asUser(offKey, 'st-off'));
          inAggregates += users.length;
          await putRecord(
            t,
            kplAggregate(users),
            'kpl-aggregate',
            shard.HashKeyRange!.StartingHashKey,
          );
        }
      }
      await putRecord(t, corruptData, 'kpl-corrupt');
      await waitUntilConsumed(t);

      const { got, want } = await eventually(
        () => allFinal(t, records, SIZES, BASE),
        'every window final',
        60_000,
      );
      compareWithOracle(got, want);
      for (const city of cities) {
        const sent = [...records, offKey]
          .filter((r) => r.city_id === city)
          .map((r) => `${r.station_id}|${new Date(r.timestamp).toISOString()}`);
        expect({ city, stored: (await storedIds(t, city)).sort() }).toEqual({
          city,
          stored: sent.sort(),
        });
      }
      await t.http.get('/cities/kpl-corrupt-city/latest').expect(404);

      const entries = await scan(t, t.config.tables.dlq);
      expect(entries).toHaveLength(2);
      const corrupt = entries.find((e) => e.partition_key === 'kpl-corrupt')!;
      expect(corrupt).toMatchObject({
        reason: 'parse_error',
        error_message: 'KPL aggregated record: MD5 trailer does not match',
        payload_encoding: 'base64',
      });
      expect(Buffer.from(corrupt.payload as string, 'base64')).toEqual(corruptData);
      expect(corrupt).not.toHaveProperty('sub_sequence_number');
      const user = entries.find((e) => e.partition_key === 'kpl-poison-key')!;
      expect(user).toMatchObject({
        reason: 'parse_error',
        payload: 'not json, in an aggregate',
        payload_encoding: 'utf8',
        sub_sequence_number: poisonIndex,
      });

      const metrics = await t.http.get('/metrics').expect(200);
      expect(metrics.text).toContain(`aq_kpl_user_records_total ${inAggregates}`);

      // Redriven as received, the corrupt aggregate fails again onto its own entry.
      await t.http.post(`/dlq/${corrupt.id as string}/redrive`).expect(202);
      const again = await eventually(async () => {
        const r = await t.http.get(`/dlq/${corrupt.id as string}`);
        return r.body.attempts === 2 ? r.body : undefined;
      }, 'the redriven aggregate failing again');
      expect(again).toMatchObject({ reason: 'parse_error', payload: corrupt.payload });
      await t.http.get('/cities/kpl-corrupt-city/latest').expect(404);
    } finally {
      await t.close();
    }
  }, 120_000);

  describe('an instance that dies or freezes inside a large aggregate (child processes)', () => {
    // One shard; aggregates of 1,300 user records, so the poller's steps of 1,000 end inside them.
    const env = isolatedEnv({
      KINESIS_SHARD_COUNT: '1',
      LEASE_FAILOVER_MS: '2000',
      ...AGGREGATION,
      AGGREGATION_FLUSH_MS: '50',
    });
    const cities = Array.from({ length: 5 }, (_, i) => `kpl-big-${i}`);
    let t: TestApp;

    beforeAll(async () => {
      t = await startApp({ ...env, CONSUMER_ENABLED: 'false' });
    });
    afterAll(() => t?.close());

    /** The shard's lease item once its checkpoint falls inside an aggregate. */
    const insideAggregate = () =>
      eventually(
        async () =>
          (await scan(t, t.config.tables.leases)).find(
            (l) => l.checkpointSubSequenceNumber !== undefined,
          ),
        'a checkpoint inside an aggregate',
        60_000,
      );

    /** Puts 4 × 1,300 measurements on the stream in KPL aggregates. */
    async function putLargeAggregates(base: number) {
      const records = dataset(5_200, { base, cities });
      for (let i = 0; i < records.length; i += 1_300) {
        const users = records.slice(i, i + 1_300).map((r) => asUser(r));
        await putRecord(t, kplAggregate(users), users[0].partitionKey);
      }
      return records;
    }

    async function expectOracle(records: Sent[], base: number) {
      const { got, want } = await eventually(
        () => allFinal(t, records, SIZES, base),
        'every window final',
        120_000,
      );
      compareWithOracle(got, want);
      await waitUntilConsumed(t);
    }

    it('SIGKILL: the next instance resumes inside the aggregate; aggregates equal the oracle', async () => {
      const base = BASE + 3_600_000;
      const records = await putLargeAggregates(base);
      let b: ServiceProcess | undefined;
      const a = await spawnService(env);
      try {
        await insideAggregate();
        await a.kill('SIGKILL');
        const [lease] = (await scan(t, t.config.tables.leases)).filter((l) =>
          String(l.leaseKey).startsWith('shardId-'),
        );
        // Killed before it finished: the next owner starts inside an aggregate.
        expect(lease.checkpointSubSequenceNumber).toEqual(expect.any(Number));
        b = await spawnService(env);
        await expectOracle(records, base);
      } finally {
        await a.kill('SIGKILL');
        await b?.kill('SIGKILL');
      }
    }, 180_000);

    it('SIGSTOP: the frozen owner wakes after the takeover and writes nothing; aggregates equal the oracle', async () => {
      const base = BASE + 2 * 3_600_000;
      const records = await putLargeAggregates(base);
      let b: ServiceProcess | undefined;
      const a = await spawnService(env);
      try {
        const seen = await insideAggregate();
        a.child.kill('SIGSTOP');
        b = await spawnService(env);
        await expectOracle(records, base);
        const finals = await aggregateTableItems(t);
        a.child.kill('SIGCONT');
        await eventually(
          async () =>
            a.logs.some(
              (line) =>
                line.includes(`${seen.leaseKey as string}: lease taken by another instance`) ||
                line.includes(`lease of ${seen.leaseKey as string} is no longer ours`),
            )
              ? true
              : undefined,
          'the woken instance learning it lost the lease',
          60_000,
        );
        expect(await a.kill('SIGTERM')).toBe(0);
        expect(await aggregateTableItems(t)).toEqual(finals);
      } finally {
        a.child.kill('SIGCONT');
        await a.kill('SIGKILL');
        await b?.kill('SIGKILL');
      }
    }, 180_000);
  });
});
