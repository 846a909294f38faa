import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { StreamConsumerService } from '../src/stream-consumer/stream-consumer.service';
import { spawnService } from './support/service-process';
import { waitUntilConsumed } from './support/stream';
import { eventually, isolatedEnv, measurement, startApp, TestApp } from './support/test-app';

// Enough cities that every one of the 4 shards gets some.
const CITIES = Array.from({ length: 32 }, (_, i) => `mi-city-${i}`);

async function leaseCounts(t: TestApp): Promise<Map<string, number>> {
  const { Items = [] } = await t.db.send(
    new ScanCommand({ TableName: t.config.tables.leases, ConsistentRead: true }),
  );
  const counts = new Map<string, number>();
  for (const item of Items) {
    if (!String(item.leaseKey).startsWith('shardId-') || !item.leaseOwner) continue;
    counts.set(item.leaseOwner, (counts.get(item.leaseOwner) ?? 0) + 1);
  }
  return counts;
}

/** Polls until the owners hold exactly `expected` leases each. */
function balanced(t: TestApp, expected: number[], what: string, timeoutMs = 30_000) {
  return eventually(
    async () => {
      const counts = [...(await leaseCounts(t)).values()].sort();
      return JSON.stringify(counts) === JSON.stringify(expected) ? counts : undefined;
    },
    what,
    timeoutMs,
  );
}

describe('several instances on one stream (child processes, real emulators)', () => {
  // E2E_LEASE_FAILOVER_MS measures the hand-over at another failover time (the default is 10000).
  const failoverMs = process.env.E2E_LEASE_FAILOVER_MS ?? '3000';
  const env = isolatedEnv({ KINESIS_SHARD_COUNT: '4', LEASE_FAILOVER_MS: failoverMs });
  let a: TestApp;
  const posted = new Map<string, Set<string>>();
  let batch = 0;

  async function post(): Promise<{ ids: string[]; at: number }> {
    batch += 1;
    const body = CITIES.map((city) =>
      measurement({
        city_id: city,
        timestamp: new Date(Date.UTC(2026, 1, 1) + batch * 1000).toISOString(),
      }),
    );
    const res = await a.http.post('/measurements').send(body).expect(202);
    res.body.message_ids.forEach((id: string, i: number) => {
      posted.set(CITIES[i], (posted.get(CITIES[i]) ?? new Set()).add(id));
    });
    return { ids: res.body.message_ids, at: Date.now() };
  }

  async function allStored(ids: string[]): Promise<boolean> {
    for (const [i, city] of CITIES.entries()) {
      const r = await a.http.get(`/cities/${city}/latest?limit=100`);
      if (
        r.status !== 200 ||
        !r.body.items.some((m: { message_id: string }) => m.message_id === ids[i])
      ) {
        return false;
      }
    }
    return true;
  }

  beforeAll(async () => {
    a = await startApp(env);
  });
  afterAll(() => a?.close());

  it('splits the shards, hands them over on SIGTERM, SIGKILL and SIGSTOP/SIGCONT, and stores every record exactly once', async () => {
    const b = await spawnService(env);
    try {
      await balanced(a, [2, 2], 'a 2/2 split between two instances');
      await post();

      const termAt = Date.now();
      expect(await b.kill('SIGTERM')).toBe(0);
      await balanced(a, [4], 'the survivor holding all four leases after SIGTERM');
      const handoverMs = Date.now() - termAt;
      await post();

      const c = await spawnService(env);
      try {
        await balanced(a, [2, 2], 'a 2/2 split with the third instance');
        await post();
        const killAt = Date.now();
        await c.kill('SIGKILL');
        const afterKill = await post();
        // Taken over: the survivor holds every lease and the records sent after the kill are stored.
        await Promise.all([
          balanced(a, [4], 'the survivor holding all four leases after SIGKILL'),
          eventually(
            async () => ((await allStored(afterKill.ids)) ? true : undefined),
            'records after SIGKILL',
            30_000,
          ),
        ]);
        const takeoverMs = Date.now() - killAt;
        process.stdout.write(
          `lease handover after SIGTERM: ${handoverMs} ms; SIGKILL → every shard's new records stored: ${takeoverMs} ms (LEASE_FAILOVER_MS=${failoverMs})\n`,
        );
      } finally {
        await c.kill('SIGKILL');
      }

      // Frozen, not killed: it wakes after its leases moved, gives them up, and rejoins.
      const d = await spawnService(env);
      try {
        await balanced(a, [2, 2], 'a 2/2 split with the fourth instance');
        await post();
        d.child.kill('SIGSTOP');
        const afterFreeze = await post();
        await Promise.all([
          balanced(a, [4], 'the survivor holding all four leases while the other is frozen'),
          eventually(
            async () => ((await allStored(afterFreeze.ids)) ? true : undefined),
            'records after SIGSTOP',
            30_000,
          ),
        ]);
        d.child.kill('SIGCONT');
        await balanced(a, [2, 2], 'a 2/2 split again once the frozen instance woke up');
        await post();
      } finally {
        d.child.kill('SIGCONT');
        await d.kill('SIGKILL');
      }
      await eventually(
        async () =>
          a.app.get(StreamConsumerService).status().shards.length === 4 ? true : undefined,
        'four pollers running in the survivor',
      );
    } finally {
      await b.kill('SIGKILL');
    }

    await waitUntilConsumed(a);
    for (const [city, ids] of posted) {
      const r = await a.http.get(`/cities/${city}/latest?limit=100`).expect(200);
      const stored = r.body.items.map((m: { message_id: string }) => m.message_id);
      expect({ city, stored: [...stored].sort() }).toEqual({ city, stored: [...ids].sort() });
    }
  }, 180_000);
});
