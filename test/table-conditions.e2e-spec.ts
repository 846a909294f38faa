import { GetCommand, PutCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { randomBytes } from 'node:crypto';
import { AggregatesRepository } from '../src/aggregation/aggregates.repository';
import { Aggregate, Refusal } from '../src/aggregation/window-aggregator';
import {
  Lease,
  LeaseLostError,
  LeaseRepository,
  STATE_CHUNK_BYTES,
} from '../src/stream-consumer/lease.repository';
import { ShardCommitRepository } from '../src/stream-consumer/shard-commit.repository';
import { tableAdmits } from '../src/stream-consumer/testing/fake-tables';
import { aggregateTableItems } from './support/oracle';
import { isolatedEnv, startApp, TestApp } from './support/test-app';
import { injectWireFaults, WireCall } from './support/wire-faults';

/**
 * The unit tests check the commit path against `tableAdmits`, a model of the conditions in the
 * aggregates table. Here the real commit path (ShardCommitRepository) runs against DynamoDB
 * Local: the table must admit and refuse exactly what the model says, fence every write by the
 * lease, and never move a checkpoint past a refused result.
 */
const WINDOW_START = Date.UTC(2026, 0, 9, 8, 0, 0);
const OLD = '2000-01-01T00:00:00.000Z';

type Existing = { final: boolean; record_count: number } | undefined;

/** A window result whose values depend on `count` and `tag`, so a replacement always shows. */
function aggregate(
  city: string,
  count: number,
  final: boolean,
  tag: number,
  start = WINDOW_START,
): Aggregate {
  const v = count * 10 + tag;
  return {
    city_id: city,
    city_name: `City ${city}`,
    window: '1m',
    window_start: new Date(start).toISOString(),
    window_end: new Date(start + 60_000).toISOString(),
    record_count: count,
    avg_pm25: v + 0.25,
    min_pm25: v,
    max_pm25: v + 1,
    avg_pm10: v + 0.5,
    min_pm10: v,
    max_pm10: v + 2,
    avg_aqi: v,
    max_aqi: v + 3,
    avg_temperature_c: tag + 0.125,
    min_temperature_c: tag,
    max_temperature_c: tag + 1,
    aqi: v,
    aqi_category: 'Unhealthy',
    final,
  };
}

/** The item the table should hold for `a` (what AggregatesRepository.putItem writes). */
function itemOf(a: Aggregate, updatedAt: unknown): Record<string, unknown> {
  const { city_name: _name, ...fields } = a;
  return { ...fields, window_key: `${a.window}#${a.window_start}`, updated_at: updatedAt };
}

describe('the commit path against DynamoDB Local agrees with the table model (tableAdmits)', () => {
  let t: TestApp;
  let commits: ShardCommitRepository;
  let leases: LeaseRepository;
  let shardSerial = 0;

  const stored = async (a: Aggregate) =>
    (
      await t.db.send(
        new GetCommand({
          TableName: t.config.tables.aggregates,
          Key: { city_id: a.city_id, window_key: `${a.window}#${a.window_start}` },
          ConsistentRead: true,
        }),
      )
    ).Item;
  const seed = (a: Aggregate) =>
    t.db.send(new PutCommand({ TableName: t.config.tables.aggregates, Item: itemOf(a, OLD) }));
  const leaseItem = async (shardId: string) =>
    (
      await t.db.send(
        new GetCommand({
          TableName: t.config.tables.leases,
          Key: { leaseKey: shardId },
          ConsistentRead: true,
        }),
      )
    ).Item!;
  /** Every aggregate item of the cities starting with `prefix`. */
  const itemsOf = async (prefix: string) =>
    [...(await aggregateTableItems(t)).values()].filter((i) =>
      String(i.city_id).startsWith(prefix),
    );

  /** Creates a lease and takes it as the coordinator does: create, scan, take what was seen. */
  async function takeNew(owner: string): Promise<Lease> {
    shardSerial += 1;
    const shardId = `shardId-9000000000${String(shardSerial).padStart(2, '0')}`;
    await leases.create(shardId, []);
    return takeAgain(shardId, owner);
  }
  async function takeAgain(shardId: string, owner: string): Promise<Lease> {
    const seen = (await leases.scan()).leases.find((l) => l.leaseKey === shardId)!;
    const lease = await leases.take(seen, owner);
    expect(lease).toMatchObject({ leaseKey: shardId, leaseOwner: owner });
    return lease!;
  }
  /** The state as the code saves it: cut into STATE_CHUNK_BYTES pieces. */
  const chunks = (state: Buffer) => {
    const out: Buffer[] = [];
    for (let i = 0; i < state.length; i += STATE_CHUNK_BYTES)
      out.push(state.subarray(i, i + STATE_CHUNK_BYTES));
    return out;
  };

  /** The state items of a shard in a table (a Scan reads 1 MB a page: every page). */
  const keysIn = async (table: string, shardId: string) => {
    const keys: string[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await t.db.send(
        new ScanCommand({ TableName: table, ConsistentRead: true, ExclusiveStartKey: startKey }),
      );
      keys.push(...(page.Items ?? []).map((i) => String(i.leaseKey)));
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return keys.filter((k) => k.startsWith(`state#${shardId}#`)).sort();
  };

  beforeAll(async () => {
    t = await startApp(isolatedEnv({ KINESIS_SHARD_COUNT: '1', CONSUMER_ENABLED: 'false' }));
    commits = t.app.get(ShardCommitRepository);
    leases = t.app.get(LeaseRepository);
    expect(t.app.get(AggregatesRepository).table).toBe(t.config.tables.aggregates);
  });
  afterAll(() => t?.close());

  const EXISTING: [string, Existing][] = [
    ['none', undefined],
    ['partial-5', { final: false, record_count: 5 }],
    ['final-5', { final: true, record_count: 5 }],
  ];
  const INCOMING: [string, { final: boolean; record_count: number }][] = [false, true].flatMap(
    (final) =>
      [4, 5, 6].map(
        (n) =>
          [`${final ? 'final' : 'partial'}-${n}`, { final, record_count: n }] as [
            string,
            { final: boolean; record_count: number },
          ],
      ),
  );

  it.each([
    ['without a checkpoint (ownership check only)', false],
    ['with a checkpoint and window state (lease update)', true],
  ])(
    'admits and refuses exactly what tableAdmits says, %s',
    async (_name, withCheckpoint) => {
      const lease = await takeNew('owner-a');
      const outcomes: Record<string, unknown>[] = [];
      const model: Record<string, unknown>[] = [];
      let step = 0;
      for (const [existingName, existing] of EXISTING) {
        for (const [incomingName, incoming] of INCOMING) {
          step += 1;
          const city = `tc-${withCheckpoint ? 'cp' : 'nc'}-${existingName}-${incomingName}`;
          const seeded = existing
            ? aggregate(city, existing.record_count, existing.final, 1)
            : undefined;
          if (seeded) await seed(seeded);
          const before = await stored(aggregate(city, 1, false, 0));
          const leaseBefore = await leaseItem(lease.leaseKey);
          // Every other checkpoint falls inside a KPL aggregate (a sub-sequence number).
          const sub = step % 2 === 0 ? undefined : step;
          const checkpoint = withCheckpoint ? `seq-${step}` : undefined;
          const state = [randomBytes(64)];
          const next = aggregate(city, incoming.record_count, incoming.final, 2);

          const refused: Refusal[] = await commits.commit(
            lease,
            { aggregates: [next], state: withCheckpoint ? state : [] },
            checkpoint === undefined
              ? undefined
              : { sequenceNumber: checkpoint, subSequenceNumber: sub },
          );

          const after = await stored(next);
          const leaseAfter = await leaseItem(lease.leaseKey);
          const admitted = refused.length === 0;
          outcomes.push({
            case: `${existingName} <- ${incomingName}`,
            admitted,
            reported: admitted ? undefined : refused[0].existing,
          });
          model.push({
            case: `${existingName} <- ${incomingName}`,
            admitted: tableAdmits(existing, incoming),
            reported: tableAdmits(existing, incoming) ? undefined : existing,
          });
          if (admitted) {
            expect(after).toEqual(itemOf(next, expect.any(String)));
            expect(after!.updated_at).not.toBe(OLD);
          } else {
            expect(refused).toEqual([{ aggregate: next, existing }]);
            expect(after).toEqual(before);
          }
          if (withCheckpoint) {
            // The checkpoint (and its state) moves with an admitted result, never past a refused one.
            if (admitted) {
              expect(leaseAfter).toMatchObject({
                checkpoint,
                stateChunks: 1,
                leaseCounter: leaseBefore.leaseCounter + 1,
              });
              expect(leaseAfter.checkpointSubSequenceNumber).toBe(sub);
              expect(lease.checkpoint).toBe(checkpoint);
              expect(lease.checkpointSubSequenceNumber).toBe(sub);
              expect(await leases.loadState(lease)).toEqual(Buffer.concat(state));
            } else {
              expect(leaseAfter).toEqual(leaseBefore);
              expect(lease.checkpoint).toBe(leaseBefore.checkpoint);
            }
          } else {
            // An admitted commit renews the lease (its counter moves); a refused one changes nothing.
            expect(leaseAfter).toEqual(
              admitted
                ? { ...leaseBefore, leaseCounter: leaseBefore.leaseCounter + 1 }
                : leaseBefore,
            );
          }
        }
      }
      // The whole truth table at once: 3 existing × 6 incoming.
      expect(outcomes).toEqual(model);
    },
    60_000,
  );

  it('a commit by an owner that lost the lease throws LeaseLostError and writes nothing', async () => {
    const lease = await takeNew('owner-a');
    expect(
      await commits.commit(
        lease,
        { aggregates: [aggregate('tc-lost-0', 3, false, 1)], state: [Buffer.from('s0')] },
        { sequenceNumber: 'seq-1' },
      ),
    ).toEqual([]);
    const cases: [string, () => Promise<Lease>][] = [
      ['another owner took it', () => takeAgain(lease.leaseKey, 'owner-b')],
      // The same owner taking it again (a new epoch) fences the old lease object too.
      ['its owner took it again', () => takeAgain(lease.leaseKey, lease.leaseOwner!)],
    ];
    let serial = 0;
    for (const [why, move] of cases) {
      const stale: Lease = { ...lease };
      const now = await move();
      expect(now.leaseEpoch).toBeGreaterThan(stale.leaseEpoch);
      const leaseBefore = await leaseItem(lease.leaseKey);
      expect(leaseBefore.checkpoint).toBe('seq-1');
      const attempts: [string, Aggregate[], string | undefined][] = [
        ['a result and a checkpoint', [aggregate(`tc-lost-${++serial}`, 4, true, 2)], 'seq-2'],
        ['a result alone', [aggregate(`tc-lost-${++serial}`, 4, false, 2)], undefined],
        [
          'more results than one transaction holds',
          Array.from({ length: 150 }, (_, i) =>
            aggregate(`tc-lost-${++serial}`, 2, i % 2 === 0, 2),
          ),
          'seq-3',
        ],
      ];
      for (const [what, aggregates, checkpoint] of attempts) {
        await expect(
          commits.commit(
            { ...stale },
            { aggregates, state: [Buffer.from('s1')] },
            checkpoint === undefined ? undefined : { sequenceNumber: checkpoint },
          ),
        ).rejects.toThrow(LeaseLostError);
        for (const a of aggregates)
          expect({ why, what, item: await stored(a) }).toEqual({
            why,
            what,
            item: undefined,
          });
        expect(await leaseItem(lease.leaseKey)).toEqual(leaseBefore);
      }
      Object.assign(lease, now);
    }
    // The result written while the lease was held is still there, untouched.
    expect(await stored(aggregate('tc-lost-0', 3, false, 1))).toEqual(
      itemOf(aggregate('tc-lost-0', 3, false, 1), expect.any(String)),
    );
  }, 60_000);

  it('writes 250 results and a ~1 MB state in several transactions; a refused result keeps the checkpoint where it was', async () => {
    const lease = await takeNew('owner-a');
    const takenCounter = lease.leaseCounter;
    const batch = (prefix: string, start: number) =>
      Array.from({ length: 250 }, (_, i) =>
        aggregate(`${prefix}-${String(i).padStart(3, '0')}`, 7, i % 3 === 0, 3, start),
      );

    // All admitted: every result, the checkpoint and the whole state are written.
    const state1 = randomBytes(1024 * 1024);
    const plan1 = chunks(state1);
    expect(plan1.length).toBeGreaterThan(2);
    const first = batch('tc-big', WINDOW_START);
    expect(
      await commits.commit(
        lease,
        { aggregates: first, state: plan1 },
        { sequenceNumber: 'seq-100' },
      ),
    ).toEqual([]);
    const items = await itemsOf('tc-big-');
    expect(items).toHaveLength(250);
    const byCity = new Map(items.map((i) => [i.city_id, i]));
    for (const a of first) expect(byCity.get(a.city_id)).toEqual(itemOf(a, expect.any(String)));
    const afterFirst = await leaseItem(lease.leaseKey);
    expect(afterFirst).toMatchObject({ checkpoint: 'seq-100', stateChunks: plan1.length });
    // Each transaction of the commit moved leaseCounter once, as a renewal does, and the owner's
    // copy follows it: 250 results and the state make at least three transactions.
    expect(afterFirst.leaseCounter).toBeGreaterThanOrEqual(takenCounter + 3);
    expect(lease.leaseCounter).toBe(afterFirst.leaseCounter);
    expect(await leases.loadState(lease)).toEqual(state1);

    // One result refused, in the transaction that carries the checkpoint (the last ones go there)
    // or in the first of the transactions sent before it: the checkpoint and state stay.
    for (const refusedAt of [249, 0]) {
      const start = WINDOW_START + (refusedAt + 1) * 60_000;
      const next = batch(`tc-big${refusedAt}`, start);
      const blocker = aggregate(next[refusedAt].city_id, 9, true, 1, start);
      await seed(blocker);
      const blockerItem = await stored(blocker);
      const refused = await commits.commit(
        { ...lease },
        { aggregates: next, state: chunks(randomBytes(1024 * 1024 + 10)) },
        { sequenceNumber: `seq-${200 + refusedAt}` },
      );
      expect(refused).toEqual([
        { aggregate: next[refusedAt], existing: { final: true, record_count: 9 } },
      ]);
      expect(await stored(blocker)).toEqual(blockerItem);
      // The transactions before the refused one renewed the lease; nothing else of it moved.
      const { leaseCounter: _counter, ...leaseNow } = (await leaseItem(lease.leaseKey))!;
      const { leaseCounter: _before, ...leaseBefore } = afterFirst!;
      expect(leaseNow).toEqual(leaseBefore);
      expect(await leases.loadState(lease)).toEqual(state1);
    }
  }, 60_000);

  it('keeps window state out of the lease table, and moves a state an older version left there', async () => {
    // Today's commits: the state goes to the state table, the lease table holds leases only.
    const lease = await takeNew('state-owner');
    const state = randomBytes(800 * 1024);
    expect(
      await commits.commit(
        lease,
        { aggregates: [], state: chunks(state) },
        { sequenceNumber: 's1' },
      ),
    ).toEqual([]);
    expect(await keysIn(t.config.tables.leases, lease.leaseKey)).toEqual([]);
    expect(await keysIn(t.config.tables.state, lease.leaseKey)).toHaveLength(3);
    expect((await leases.scan()).leases.every((l) => !('data' in l))).toBe(true);
    expect(await leases.loadState(lease)).toEqual(state);

    // A state saved in the lease table by an older version: read from there, moved by the next
    // checkpoint (written to the state table, deleted from the lease table).
    const old = await takeNew('state-owner');
    const legacy = chunks(randomBytes(500 * 1024));
    for (const [i, data] of legacy.entries())
      await t.db.send(
        new PutCommand({
          TableName: t.config.tables.leases,
          Item: { leaseKey: `state#${old.leaseKey}#${i}`, data },
        }),
      );
    await t.db.send(
      new PutCommand({
        TableName: t.config.tables.leases,
        Item: { ...(await leaseItem(old.leaseKey)), checkpoint: 's0', stateChunks: legacy.length },
      }),
    );
    const reloaded = await takeAgain(old.leaseKey, 'new-owner');
    expect(await leases.loadState(reloaded)).toEqual(Buffer.concat(legacy));
    const next = chunks(randomBytes(100 * 1024));
    expect(
      await commits.commit(reloaded, { aggregates: [], state: next }, { sequenceNumber: 's2' }),
    ).toEqual([]);
    expect(await keysIn(t.config.tables.leases, old.leaseKey)).toEqual([]);
    expect(await keysIn(t.config.tables.state, old.leaseKey)).toHaveLength(next.length);
    expect(await leases.loadState(reloaded)).toEqual(Buffer.concat(next));
  });

  it("appends a state's changes after it, fenced by the lease; a full state replaces them all", async () => {
    const lease = await takeNew('log-owner');
    const full = chunks(randomBytes(500 * 1024));
    const change = (n: number) => [randomBytes(2000 + n)];
    expect(
      await commits.commit(lease, { aggregates: [], state: full }, { sequenceNumber: 'l1' }),
    ).toEqual([]);
    const changes = [change(1), change(2)];
    for (const [i, state] of changes.entries()) {
      const result = aggregate(`tc-log-${i}`, 2, false, 1);
      expect(
        await commits.commit(
          lease,
          { aggregates: [result], state, appendState: true },
          { sequenceNumber: `l${i + 2}` },
        ),
      ).toEqual([]);
      expect(await stored(result)).toEqual(itemOf(result, expect.any(String)));
    }
    const logged = Buffer.concat([...full, ...changes.flat()]);
    expect(await leaseItem(lease.leaseKey)).toMatchObject({
      checkpoint: 'l3',
      stateChunks: full.length + 2,
    });
    expect(lease.stateChunks).toBe(full.length + 2);
    expect(await leases.loadState(lease)).toEqual(logged);

    // An owner that lost the lease appends nothing: not the chunk, not the count.
    const stale: Lease = { ...lease };
    const now = await takeAgain(lease.leaseKey, 'log-next');
    await expect(
      commits.commit(
        stale,
        { aggregates: [], state: change(3), appendState: true },
        { sequenceNumber: 'l9' },
      ),
    ).rejects.toThrow(LeaseLostError);
    expect(await keysIn(t.config.tables.state, lease.leaseKey)).toHaveLength(full.length + 2);
    expect(await leaseItem(lease.leaseKey)).toMatchObject({
      checkpoint: 'l3',
      stateChunks: full.length + 2,
    });
    expect(await leases.loadState(now)).toEqual(logged);

    // The next owner's first checkpoint is a full state: the changes and stale chunks go.
    const replaced = [randomBytes(3000)];
    expect(
      await commits.commit(now, { aggregates: [], state: replaced }, { sequenceNumber: 'l4' }),
    ).toEqual([]);
    expect(await keysIn(t.config.tables.state, lease.leaseKey)).toHaveLength(1);
    expect(await leases.loadState(now)).toEqual(replaced[0]);
  });

  it('renews the leases of one tick together, 25 to a call, each fenced on its own', async () => {
    const held = [];
    for (let i = 0; i < 30; i++) held.push(await takeNew('owner-r'));
    // Two renewals that must be refused: another owner took one lease, its owner took the other
    // again (a new epoch); the renewing objects are the stale ones.
    const stolen = { ...held[3] };
    await takeAgain(stolen.leaseKey, 'owner-s');
    const retaken = { ...held[27] };
    await takeAgain(retaken.leaseKey, 'owner-r');
    const renewing = held.map((l, i) => (i === 3 ? stolen : i === 27 ? retaken : l));
    const before = await Promise.all(renewing.map((l) => leaseItem(l.leaseKey)));

    const calls: WireCall[] = [];
    const end = injectWireFaults(t.dynamoDb, (call) => void calls.push(call));
    let outcomes: PromiseSettledResult<void>[];
    try {
      outcomes = await Promise.allSettled(renewing.map((l) => leases.renew(l)));
    } finally {
      end();
    }
    expect(calls.map((c) => [c.operation, c.input.Statements.length])).toEqual([
      ['BatchExecuteStatement', 25],
      ['BatchExecuteStatement', 5],
    ]);
    for (const [i, lease] of renewing.entries()) {
      const now = await leaseItem(lease.leaseKey);
      if (i === 3 || i === 27) {
        expect(outcomes[i]).toMatchObject({
          status: 'rejected',
          reason: expect.any(LeaseLostError),
        });
        expect(now).toEqual(before[i]);
      } else {
        expect(outcomes[i].status).toBe('fulfilled');
        expect(now).toEqual({ ...before[i], leaseCounter: before[i].leaseCounter + 1 });
        expect(lease.leaseCounter).toBe(now.leaseCounter);
      }
    }

    // A statement the table refuses for another reason fails that renewal alone, with its code;
    // a call that fails fails every renewal in it. Neither is a lost lease.
    const live = renewing.filter((_, i) => i !== 3 && i !== 27).slice(0, 3);
    const throttleSecond = injectWireFaults(t.dynamoDb, ({ operation, input }) =>
      operation === 'BatchExecuteStatement'
        ? {
            forward: input,
            rewrite: (output: { Responses: object[] }) => ({
              Responses: output.Responses.map((r, i) =>
                i === 1 ? { Error: { Code: 'ThrottlingError', Message: 'slow down' } } : r,
              ),
            }),
          }
        : undefined,
    );
    try {
      const settled = await Promise.allSettled(live.map((l) => leases.renew(l)));
      expect(
        settled.map((o) => (o.status === 'rejected' ? (o.reason as Error).name : 'ok')),
      ).toEqual(['ok', 'ThrottlingError', 'ok']);
    } finally {
      throttleSecond();
    }
    const down = injectWireFaults(t.dynamoDb, ({ operation }) =>
      operation === 'BatchExecuteStatement'
        ? { status: 500, type: 'InternalServerError', message: 'down' }
        : undefined,
    );
    try {
      const settled = await Promise.allSettled(live.map((l) => leases.renew(l)));
      expect(
        settled.map((o) => (o.status === 'rejected' ? (o.reason as Error).name : 'ok')),
      ).toEqual(['InternalServerError', 'InternalServerError', 'InternalServerError']);
    } finally {
      down();
    }
  }, 60_000);
});
