import { Logger } from '@nestjs/common';
import fc from 'fast-check';
import { gunzipSync } from 'node:zlib';
import { STATE_LOG, WindowedShardAggregation } from '../aggregation/shard-aggregation';
import { Aggregate } from '../aggregation/window-aggregator';
import { parseWindowSizes } from '../domain/windows';
import { Measurement, normaliseMeasurement } from '../domain/measurement';
import { MetricsService } from '../metrics/metrics.service';
import { Lease, LeaseLostError } from './lease.repository';
import { CHECKPOINT_INTERVAL_MS, Retry, ShardCommitter } from './shard-committer';
import { FakeTables, tableAdmits } from './testing/fake-tables';

const SHARD = 'shardId-000000000000';
const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);
const SETTINGS = {
  sizes: parseWindowSizes('1m,5m'),
  outOfOrdernessMs: 5000,
  allowedLatenessMs: 10_000,
  idleMs: 1000,
  flushMs: 0,
  maxOpenWindows: 10_000,
};
const FAR_FUTURE = () => Date.now() + 48 * 3_600_000;
const once: Retry = (_operation, action) => action();

function measurement(i: number, city: number, offsetMs: number, pm25: number): Measurement {
  return normaliseMeasurement(
    {
      city_id: `city-${city}`,
      city_name: `City ${city}`,
      timestamp: new Date(T0 + offsetMs).toISOString(),
      pm25_value: pm25,
      pm10_value: 20 + city,
      temperature_c: -5 + (i % 20) / 3,
      station_id: `s${i}`,
    },
    new Date(T0 + offsetMs + 100),
  );
}

/** One instance's view of the shard: its lease, its windows, its commit path, its position. */
class Writer {
  readonly aggregation: WindowedShardAggregation;
  readonly committer: ShardCommitter;
  position: number;
  lost = false;
  now = T0;

  constructor(
    readonly tables: FakeTables,
    readonly lease: Lease,
  ) {
    this.aggregation = new WindowedShardAggregation(
      SHARD,
      SETTINGS,
      { loadState: () => tables.loadState(SHARD), loadParentStates: async () => [] },
      new MetricsService(),
      2048,
    );
    this.committer = new ShardCommitter(
      lease,
      this.aggregation,
      tables,
      { flush: async () => undefined },
      () => this.now,
    );
    this.position = lease.checkpoint === undefined ? 0 : Number(lease.checkpoint) + 1;
  }

  static async take(tables: FakeTables, owner: string): Promise<Writer> {
    const writer = new Writer(tables, tables.take(SHARD, owner));
    await writer.aggregation.restore();
    return writer;
  }

  process(records: Measurement[], n: number): void {
    const batch = records.slice(this.position, this.position + n);
    this.aggregation.add(batch, (this.now += 1));
    this.position += batch.length;
  }

  /** Without `checkpointNow`, a commit that is not forced writes results only (a busy shard). */
  async commit(force: boolean, caughtUp = false, checkpointNow = false): Promise<void> {
    if (this.lost) return;
    try {
      this.now += 1;
      const position =
        this.position === 0 ? undefined : { sequenceNumber: String(this.position - 1) };
      await this.committer.commit(position, { caughtUp, force, checkpointNow }, once);
    } catch (error) {
      if (!(error instanceof LeaseLostError)) throw error;
      this.lost = true;
    }
  }

  /** A commit cut short: the first transactions (results only, fenced) land, the rest never do. */
  async partialCommit(cut: number): Promise<void> {
    if (this.lost) return;
    const due = this.aggregation.due((this.now += 1), false, true).slice(0, cut);
    try {
      await this.tables.commit(this.lease, { aggregates: due, state: [] }, undefined);
    } catch (error) {
      if (!(error instanceof LeaseLostError)) throw error;
      this.lost = true;
    }
  }

  /** A frozen owner that wakes: its clock says it was idle for a minute, so windows close. */
  async wakeUp(): Promise<void> {
    this.now += 60_000;
    await this.commit(true, true);
  }

  /** Reads the rest of the shard, then idles until every window is final. */
  async finish(records: Measurement[]): Promise<void> {
    this.process(records, records.length);
    await this.commit(true);
    this.now = FAR_FUTURE();
    await this.commit(true, true);
  }
}

const finalsOf = (tables: FakeTables) =>
  new Map(
    [...tables.finals()].map(([key, a]) => {
      const { ...fields } = a;
      return [key, fields] as [string, Aggregate];
    }),
  );

beforeAll(() => Logger.overrideLogger(false));

describe('ShardCommitter', () => {
  it('flushes the latest items, then writes the due windows and the checkpoint with the state in one commit', async () => {
    const tables = new FakeTables();
    const writer = await Writer.take(tables, 'a');
    const events: string[] = [];
    const committer = new ShardCommitter(
      writer.lease,
      writer.aggregation,
      {
        commit: async (lease, plan, checkpoint) => {
          events.push(
            `commit ${checkpoint?.sequenceNumber} ${plan.aggregates.length} ${plan.state.length > 0}`,
          );
          return tables.commit(lease, plan, checkpoint);
        },
      },
      { flush: async () => void events.push('flush') },
      () => T0,
    );
    writer.aggregation.add([measurement(1, 0, 1000, 10)], T0);
    expect(
      await committer.commit(
        { sequenceNumber: '1' },
        { caughtUp: false, force: false, checkpointNow: true },
        once,
      ),
    ).toBe(true);
    expect(events).toEqual(['flush', 'commit 1 2 true']);
    expect(tables.checkpointOf(SHARD)).toBe('1');
    // Nothing changed and the position did not move: nothing to write.
    expect(
      await committer.commit({ sequenceNumber: '1' }, { caughtUp: false, force: true }, once),
    ).toBe(false);
  });

  it('a busy shard writes its results every flush but checkpoints with its state only every CHECKPOINT_INTERVAL_MS, an idle one at once', async () => {
    const tables = new FakeTables();
    const writer = await Writer.take(tables, 'a');
    const records = [0, 1, 2, 3].map((i) => measurement(i, 0, 1000 + i, 10 + i));
    const stateWrites = () => tables.log.filter((l) => l.startsWith('checkpoint')).length;
    writer.process(records, 2);
    await writer.commit(false);
    expect(tables.aggregates.size).toBeGreaterThan(0);
    expect(tables.checkpointOf(SHARD)).toBeUndefined();
    writer.now += CHECKPOINT_INTERVAL_MS;
    writer.process(records, 1);
    await writer.commit(false);
    expect(tables.checkpointOf(SHARD)).toBe('2');
    writer.process(records, 1);
    await writer.commit(false);
    expect(tables.checkpointOf(SHARD)).toBe('2');
    await writer.commit(false, true, true);
    expect(tables.checkpointOf(SHARD)).toBe('3');
    expect(stateWrites()).toBe(2);
  });

  it('checkpoints a full state, then only the changes after it, until they are too many; a new owner restores them all', async () => {
    const tables = new FakeTables();
    const writer = await Writer.take(tables, 'a');
    const records = Array.from({ length: 120 }, (_, i) => measurement(i, i % 3, i * 500, i));
    const saved = () => {
      const state = tables.leases.get(SHARD)!.state!;
      const lines = gunzipSync(Buffer.concat(state)).toString().split('\n').filter(Boolean);
      return lines.map((line) =>
        (JSON.parse(line) as { d?: number }).d === 1 ? 'changes' : 'full',
      );
    };
    writer.process(records, 40);
    await writer.commit(true);
    expect(saved()).toEqual(['full']);
    for (let i = 1; i <= STATE_LOG.maxChanges; i += 1) {
      writer.process(records, 2);
      await writer.commit(false, false, true);
      expect(saved()).toEqual(['full', ...Array<string>(i).fill('changes')]);
    }
    writer.process(records, 2);
    await writer.commit(false, false, true);
    expect(saved()).toEqual(['full']);
    writer.process(records, 3);
    await writer.commit(false, false, true);
    expect(saved()).toEqual(['full', 'changes']);

    const reference = new FakeTables();
    await (await Writer.take(reference, 'solo')).finish(records);
    const next = await Writer.take(tables, 'b');
    expect(next.position).toBe(writer.position);
    await next.finish(records);
    expect(finalsOf(tables)).toEqual(finalsOf(reference));
  });

  it('a window the table already holds as final is forgotten, its extra records are late, and the checkpoint still lands', async () => {
    const tables = new FakeTables();
    const writer = await Writer.take(tables, 'a');
    writer.process(
      [0, 1, 2].map((i) => measurement(i, 0, 1000 + i, 10 + i)),
      3,
    );
    const [oneMinute] = writer.aggregation.due(T0, false, true);
    tables.aggregates.set(`city-0|1m#${oneMinute.window_start}`, {
      ...oneMinute,
      record_count: 2,
      final: true,
    });
    const metrics = new MetricsService();
    const aggregation = writer.aggregation as unknown as { metrics: MetricsService };
    aggregation.metrics = metrics;
    await writer.commit(false, false, true);
    expect(tables.checkpointOf(SHARD)).toBe('2');
    expect(tables.aggregates.get(`city-0|1m#${oneMinute.window_start}`)).toMatchObject({
      record_count: 2,
      final: true,
    });
    expect((await metrics.lateRecords.get()).values[0].value).toBe(1);
    // A later record for that window is late, not a reopener.
    writer.aggregation.add([measurement(9, 0, 1500, 99)], T0 + 1);
    expect((await metrics.lateRecords.get()).values[0].value).toBe(2);
  });

  it('a new owner that restored an older state never turns a final the old owner wrote back into a partial', async () => {
    const records = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90].map((s, i) =>
      measurement(i, 0, s * 1000, 10 + i),
    );
    const reference = new FakeTables();
    await (await Writer.take(reference, 'solo')).finish(records);
    const tables = new FakeTables();
    const a = await Writer.take(tables, 'a');
    a.process(records, 2);
    await a.commit(true); // checkpoint at record 1: the first minute open, 2 records
    a.process(records, 8);
    await a.partialCommit(6); // its final lands, the checkpoint does not
    const firstMinute = `city-0|1m#${new Date(T0).toISOString()}`;
    const final = tables.aggregates.get(firstMinute)!;
    expect(final).toMatchObject({ final: true, record_count: 6 });

    const b = await Writer.take(tables, 'b');
    b.process(records, 2);
    await b.commit(true);
    expect(tables.aggregates.get(firstMinute)).toEqual(final);
    await b.finish(records);
    expect(tables.aggregates.get(firstMinute)).toEqual(final);
    expect(finalsOf(tables)).toEqual(finalsOf(reference));
  });

  it('property: two writers with any interleaving of reads, commits, cut-short commits and takeovers end with the table an uninterrupted run gives; a final never changes and a partial never shrinks', async () => {
    const recordsArb = fc
      .array(
        fc.record({
          city: fc.integer({ min: 0, max: 2 }),
          jitter: fc.integer({ min: -3000, max: 3000 }),
          pm25: fc.integer({ min: 0, max: 5000 }).map((v) => v / 10),
          duplicate: fc.boolean(),
        }),
        { minLength: 5, maxLength: 60 },
      )
      .map((specs) => {
        const out: Measurement[] = [];
        specs.forEach((s, i) => {
          const m = measurement(i, s.city, i * 7000 + s.jitter, s.pm25);
          out.push(m);
          if (s.duplicate && i > 0) out.push(out[Math.floor(i / 2)]);
        });
        return out;
      });
    const w = fc.integer({ min: 0, max: 1 });
    const opArb = fc.oneof(
      {
        arbitrary: fc.record({
          w,
          kind: fc.constant('process' as const),
          n: fc.integer({ min: 1, max: 12 }),
        }),
        weight: 4,
      },
      {
        arbitrary: fc.record({ w, kind: fc.constant('commit' as const), force: fc.boolean() }),
        weight: 4,
      },
      {
        arbitrary: fc.record({
          w,
          kind: fc.constant('cut' as const),
          cut: fc.integer({ min: 1, max: 6 }),
        }),
        weight: 2,
      },
      { arbitrary: fc.record({ w, kind: fc.constant('take' as const) }), weight: 2 },
      // Only an owner that lost its lease wakes up thinking it was idle: the rightful owner
      // never idles before the end, so the uninterrupted run stays the oracle.
      { arbitrary: fc.record({ w, kind: fc.constant('wake' as const) }), weight: 1 },
    );

    await fc.assert(
      fc.asyncProperty(recordsArb, fc.array(opArb, { maxLength: 40 }), async (records, ops) => {
        const reference = new FakeTables();
        await (await Writer.take(reference, 'solo')).finish(records);

        const tables = new FakeTables();
        const writers: Writer[] = [await Writer.take(tables, 'w0'), undefined!];
        let owner = 0;
        const seenFinals = new Map<string, Aggregate>();
        const seenCounts = new Map<string, number>();
        const check = () => {
          for (const [key, a] of tables.aggregates) {
            const before = seenFinals.get(key);
            if (before) expect(a).toEqual(before);
            if (a.final) seenFinals.set(key, a);
            expect(a.record_count).toBeGreaterThanOrEqual(seenCounts.get(key) ?? 0);
            seenCounts.set(key, a.record_count);
          }
          for (const key of seenFinals.keys()) expect(tables.aggregates.has(key)).toBe(true);
        };
        for (const op of ops) {
          const writer = writers[op.w];
          if (op.kind === 'take') {
            writers[op.w] = await Writer.take(tables, `w${op.w}`);
            owner = op.w;
          } else if (!writer) {
            continue;
          } else if (op.kind === 'process') {
            writer.process(records, op.n);
          } else if (op.kind === 'commit') {
            await writer.commit(op.force);
          } else if (op.kind === 'wake') {
            if (op.w !== owner) await writer.wakeUp();
          } else {
            await writer.partialCommit(op.cut);
          }
          check();
        }
        const last = await Writer.take(tables, `w${owner}`);
        await last.finish(records);
        check();
        for (const w of writers) if (w && w !== last) await w.commit(true, true);
        check();
        expect(finalsOf(tables)).toEqual(finalsOf(reference));
        expect([...tables.aggregates.values()].every((a) => a.final)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('the table model admits exactly what the conditions allow', () => {
    expect(tableAdmits(undefined, { final: false, record_count: 1 })).toBe(true);
    expect(tableAdmits({ final: true, record_count: 3 }, { final: true, record_count: 3 })).toBe(
      false,
    );
    expect(tableAdmits({ final: true, record_count: 3 }, { final: false, record_count: 9 })).toBe(
      false,
    );
    expect(tableAdmits({ final: false, record_count: 3 }, { final: false, record_count: 2 })).toBe(
      false,
    );
    expect(tableAdmits({ final: false, record_count: 3 }, { final: false, record_count: 3 })).toBe(
      true,
    );
    expect(tableAdmits({ final: false, record_count: 3 }, { final: true, record_count: 1 })).toBe(
      true,
    );
  });
});
