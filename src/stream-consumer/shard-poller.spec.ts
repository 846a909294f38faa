import { Logger } from '@nestjs/common';
import { gunzipSync } from 'node:zlib';
import { UnrestorableStateError, WindowedShardAggregation } from '../aggregation/shard-aggregation';
import { parseWindowSizes } from '../domain/windows';
import { Measurement } from '../domain/measurement';
import { MetricsService } from '../metrics/metrics.service';
import { DeadLetter } from './dead-letter.repository';
import { Checkpoint, Lease, SHARD_END } from './lease.repository';
import { StreamRecord } from './record-decoder';
import { ShardCommitter } from './shard-committer';
import { BatchSink, PollerTiming, ShardPoller, ShardReader } from './shard-poller';
import { ShardRetrier } from './shard-retrier';
import { FakeTables } from './testing/fake-tables';
import { until } from './testing/until';
import { kplAggregate, withBadMd5 } from '../../test/support/kpl';

const SHARD = 'shardId-000000000001';
const TIMING: PollerTiming = {
  minPollIntervalMs: 0,
  idleDelayMs: 1,
  idleAfterMs: 0,
  idlePhaseMs: 0,
  recordsPerStep: 1000,
  stopCommitAttempts: 3,
  stopCommitBudgetMs: 1000,
};
const SETTINGS = {
  sizes: parseWindowSizes('5m'),
  outOfOrdernessMs: 5000,
  allowedLatenessMs: 30000,
  idleMs: 10000,
  flushMs: 0,
  maxOpenWindows: 1000,
};

type Page = Awaited<ReturnType<ShardReader['read']>>;

/** A position as the fake tables write it: `sequence/subSequence` inside a KPL aggregate. */
const positionText = (p: Checkpoint | undefined) =>
  p?.subSequenceNumber === undefined
    ? p?.sequenceNumber
    : `${p.sequenceNumber}/${p.subSequenceNumber}`;

/** A valid measurement record (event time in the past); its partition key is its city. */
const valid = (seq: string, city = `city-${seq}`): StreamRecord => ({
  data: Buffer.from(
    JSON.stringify({
      city_id: city,
      city_name: city.toUpperCase(),
      timestamp: '2025-06-01T08:00:00Z',
      pm25_value: 12.0,
      pm10_value: 80,
      temperature_c: 18.4,
      station_id: `st-${seq}`,
      ingestion_timestamp: '2025-06-01T08:00:01.000Z',
    }),
  ),
  sequenceNumber: seq,
  partitionKey: city,
});

/** A KPL aggregated record of `users` (their partition keys and data) at `seq`. */
const aggregated = (seq: string, users: StreamRecord[]): StreamRecord => ({
  data: kplAggregate(users.map((u) => ({ partitionKey: u.partitionKey, data: u.data }))),
  sequenceNumber: seq,
  partitionKey: users[0].partitionKey,
});

/** Not JSON: dead-lettered as parse_error. */
const garbage = (seq: string): StreamRecord => ({
  data: Buffer.from('this is not json'),
  sequenceNumber: seq,
  partitionKey: 'x',
});

/** JSON, but pm25_value out of range: dead-lettered as validation_error. */
const invalid = (seq: string): StreamRecord => {
  const value = JSON.parse(Buffer.from(valid(seq).data).toString('utf8'));
  value.pm25_value = -3;
  return { ...valid(seq), data: Buffer.from(JSON.stringify(value)) };
};

const named = (name: string, message = name) => Object.assign(new Error(message), { name });

/** Shared, ordered log of every sink and commit call. */
type Events = string[];

/** `failure(batch, attempt)` decides what a store call throws. */
class FakeSink implements BatchSink {
  stored: Measurement[][] = [];
  deadLettered: DeadLetter[][] = [];
  deaggregatedCount = 0;
  storeAttempts = 0;
  failure?: (batch: Measurement[], attempt: number) => Error | undefined;
  deadLetterFailures = 0;
  private deadLetterAttempts = 0;

  constructor(private readonly events: Events) {}

  async store(measurements: Measurement[]): Promise<void> {
    this.storeAttempts += 1;
    const error = this.failure?.(measurements, this.storeAttempts);
    if (error) {
      this.events.push(`store-failed:${measurements.length}`);
      throw error;
    }
    this.events.push(`store:${measurements.length}`);
    this.stored.push(measurements);
  }

  async deadLetter(letters: DeadLetter[]): Promise<void> {
    this.deadLetterAttempts += 1;
    if (this.deadLetterAttempts <= this.deadLetterFailures) {
      this.events.push('deadLetter-failed');
      throw named('InternalServerError', 'dlq table unreachable');
    }
    this.events.push(`deadLetter:${letters.length}`);
    this.deadLettered.push(letters);
  }

  deaggregated(count: number): void {
    this.deaggregatedCount += count;
  }
}

/** Iterators are handed out as it-1, it-2, …; `pages` answers each read by iterator. */
class FakeReader implements ShardReader {
  iteratorCalls: [string, Checkpoint | undefined][] = [];
  reads: string[] = [];
  private issued = 0;

  constructor(private readonly pages: (iterator: string, readNumber: number) => Page) {}

  async iterator(shardId: string, position: Checkpoint | undefined): Promise<string> {
    this.iteratorCalls.push([shardId, position]);
    this.issued += 1;
    return `it-${this.issued}`;
  }

  async read(iterator: string): Promise<Page> {
    this.reads.push(iterator);
    return this.pages(iterator, this.reads.length);
  }
}

/** Reads `batches` one page each, then stays idle (an open shard) unless `closed`. */
const pagesOf =
  (batches: StreamRecord[][], closed = false) =>
  (_iterator: string, readNumber: number): Page => {
    if (readNumber <= batches.length)
      return {
        records: batches[readNumber - 1],
        next: `after-${readNumber}`,
        millisBehindLatest: 0,
      };
    return { records: [], next: closed ? undefined : `idle-${readNumber}`, millisBehindLatest: 0 };
  };

function setup(
  options: {
    pages?: (iterator: string, readNumber: number) => Page;
    checkpoint?: string;
    tables?: FakeTables;
    owner?: string;
    timing?: Partial<PollerTiming>;
  } = {},
) {
  const events: Events = [];
  const tables = options.tables ?? new FakeTables();
  const lease: Lease = tables.take(SHARD, options.owner ?? 'worker-a');
  if (options.checkpoint !== undefined) {
    lease.checkpoint = options.checkpoint;
    tables.leases.get(SHARD)!.checkpoint = options.checkpoint;
  }
  const sink = new FakeSink(events);
  const reader = new FakeReader(options.pages ?? (() => ({ records: [], next: undefined })));
  const log = { warn: jest.fn(), error: jest.fn() };
  const metrics = new MetricsService();
  const aggregation = new WindowedShardAggregation(
    SHARD,
    SETTINGS,
    { loadState: () => tables.loadState(SHARD), loadParentStates: async () => [] },
    metrics,
    1024,
  );
  const store = {
    commit: async (...args: Parameters<FakeTables['commit']>) => {
      try {
        const refused = await tables.commit(...args);
        events.push(`commit:${positionText(args[2])}`);
        return refused;
      } catch (error) {
        events.push(`commit-failed:${(error as Error).name}`);
        throw error;
      }
    },
  };
  const latest = { flush: jest.fn(async () => void events.push('flush')) };
  const committer = new ShardCommitter(lease, aggregation, store, latest);
  const retrier = (signal: AbortSignal) =>
    new ShardRetrier(SHARD, { baseMs: 1, capMs: 2 }, signal, { warn: log.warn });
  const poller = new ShardPoller(lease, reader, sink, aggregation, committer, retrier, log, {
    ...TIMING,
    ...options.timing,
  });
  return { events, tables, lease, sink, reader, log, poller, latest };
}

const cities = (batch: Measurement[]) => batch.map((m) => m.city_id);
const commits = (events: Events) => events.filter((e) => e.startsWith('commit:'));

beforeAll(() => Logger.overrideLogger(false));

describe('ShardPoller', () => {
  describe('store, dead-letter, then commit', () => {
    it('stores the valid records, dead-letters the poison ones with their reason, and commits after both', async () => {
      const poisonParse = garbage('2');
      const poisonInvalid = invalid('4');
      const { poller, sink, events, tables } = setup({
        pages: pagesOf([[valid('1'), poisonParse, valid('3'), poisonInvalid, valid('5')]]),
      });
      const run = poller.run();
      await until(() => tables.checkpointOf(SHARD) === '5', 'the checkpoint at 5');
      poller.stop();
      await run;

      expect(cities(sink.stored[0])).toEqual(['city-1', 'city-3', 'city-5']);
      expect(sink.stored[0][0].aqi_value).toBe(63);
      const [parse, validation] = sink.deadLettered[0];
      expect(parse).toEqual({
        record: poisonParse,
        shardId: SHARD,
        reason: 'parse_error',
        message: 'record data is not valid JSON',
      });
      expect(validation).toMatchObject({ record: poisonInvalid, reason: 'validation_error' });
      expect(validation.message).toContain('pm25_value');
      // The latest items are flushed, then the commit lands, after the store and the DLQ write:
      // the window results at once, the checkpoint with the next (empty) read.
      expect(events.slice(0, 6)).toEqual([
        'store:3',
        'deadLetter:2',
        'flush',
        'commit:undefined',
        'flush',
        'commit:5',
      ]);
    });

    it('commits a batch made only of poison records without calling store', async () => {
      const { poller, sink, events, tables } = setup({
        pages: pagesOf([[garbage('7'), invalid('8')]]),
      });
      const run = poller.run();
      await until(() => tables.checkpointOf(SHARD) === '8', 'the checkpoint at 8');
      poller.stop();
      await run;
      expect(sink.stored).toEqual([]);
      expect(events.slice(0, 3)).toEqual(['deadLetter:2', 'flush', 'commit:8']);
    });

    it('saves the window state with the checkpoint, and the windows it writes with it', async () => {
      const { poller, tables } = setup({ pages: pagesOf([[valid('1', 'c'), valid('2', 'c')]]) });
      const run = poller.run();
      await until(() => tables.checkpointOf(SHARD) === '2', 'the checkpoint at 2');
      poller.stop();
      await run;
      const state = JSON.parse(gunzipSync((await tables.loadState(SHARD))!).toString());
      expect(state.windows).toHaveLength(1);
      expect(state.windows[0][5]).toBe(2);
      expect([...tables.aggregates.values()]).toEqual([
        expect.objectContaining({ city_id: 'c', record_count: 2, final: false }),
      ]);
    });
    it('reads the next page while the commit is in flight, and processes it only once that commit is done', async () => {
      const { poller, reader, sink, tables, events } = setup({
        pages: pagesOf([[valid('1', 'c')], [valid('2', 'c')]]),
      });
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const commit = tables.commit.bind(tables);
      tables.commit = async (...args) => {
        await gate;
        return commit(...args);
      };
      const run = poller.run();
      await until(() => reader.reads.length >= 2, 'the second read, during the first commit');
      expect(sink.stored).toHaveLength(1);
      expect(tables.checkpointOf(SHARD)).toBeUndefined();
      release();
      await until(() => tables.checkpointOf(SHARD) === '2', 'the checkpoint at 2');
      poller.stop();
      await run;
      expect(events.slice(0, 4)).toEqual(['store:1', 'flush', 'commit:undefined', 'store:1']);
    });
  });

  describe('outages stall, never discard', () => {
    it('retries a failing speed-layer write far past any budget: nothing is dead-lettered or checkpointed until it succeeds, and the shard reports the stall', async () => {
      const { poller, sink, events, tables } = setup({
        pages: pagesOf([[valid('1'), valid('2')]]),
      });
      let failing = true;
      sink.failure = () => (failing ? named('ProvisionedThroughputExceededException') : undefined);
      const run = poller.run();
      await until(() => sink.storeAttempts >= 50, '50 failed stores');
      expect(poller.status()).toMatchObject({
        state: 'stalled',
        stall: {
          on: 'speed-layer write',
          attempts: expect.any(Number),
          lastError: expect.stringContaining('ProvisionedThroughputExceeded'),
        },
      });
      expect(sink.deadLettered).toEqual([]);
      expect(tables.checkpointOf(SHARD)).toBeUndefined();
      failing = false;
      await until(() => tables.checkpointOf(SHARD) === '2', 'the checkpoint after recovery');
      expect(poller.status().stall).toBeUndefined();
      poller.stop();
      await run;
      expect(sink.deadLettered).toEqual([]);
      expect(cities(sink.stored.flat())).toEqual(['city-1', 'city-2']);
      expect(events.filter((e) => e.startsWith('deadLetter'))).toEqual([]);
    });

    it('treats timeouts, 5xx and unknown errors as outages too', async () => {
      const errors = [
        named('TimeoutError'),
        named('InternalServerError'),
        named('ServiceUnavailable'),
        new TypeError('socket hang up'),
        named('UnprocessedError'),
      ];
      const { poller, sink, tables } = setup({ pages: pagesOf([[valid('1')]]) });
      sink.failure = (_batch, attempt) => errors[attempt - 1];
      const run = poller.run();
      await until(() => tables.checkpointOf(SHARD) === '1', 'the checkpoint');
      poller.stop();
      await run;
      expect(sink.storeAttempts).toBe(errors.length + 1);
      expect(sink.deadLettered).toEqual([]);
    });

    it('dead-letters only the record DynamoDB refuses for itself (ValidationException), found by halving the batch', async () => {
      const records = ['1', '2', '3', '4', '5', '6', '7'].map((s) => valid(s));
      records[4] = valid('5', 'bad-city');
      const { poller, sink, tables } = setup({ pages: pagesOf([records]) });
      sink.failure = (batch) =>
        batch.some((m) => m.city_id === 'bad-city')
          ? named('ValidationException', 'Item size has exceeded the maximum allowed size')
          : undefined;
      const run = poller.run();
      await until(() => tables.checkpointOf(SHARD) === '7', 'the checkpoint at 7');
      poller.stop();
      await run;
      expect(sink.deadLettered).toHaveLength(1);
      expect(sink.deadLettered[0]).toEqual([
        expect.objectContaining({
          reason: 'processing_error',
          message: expect.stringContaining('ValidationException'),
        }),
      ]);
      expect(sink.deadLettered[0][0].record.sequenceNumber).toBe('5');
      expect(cities(sink.stored.flat()).sort()).toEqual(
        ['city-1', 'city-2', 'city-3', 'city-4', 'city-6', 'city-7'].sort(),
      );
    });

    it('keeps retrying the dead-letter write: nothing is checkpointed before it succeeds', async () => {
      const { poller, sink, events, tables } = setup({
        pages: pagesOf([[valid('1'), garbage('2')]]),
      });
      sink.deadLetterFailures = 20;
      const run = poller.run();
      await until(() => tables.checkpointOf(SHARD) === '2', 'the checkpoint at 2');
      poller.stop();
      await run;
      expect(events.filter((e) => e === 'deadLetter-failed')).toHaveLength(20);
      expect(events.indexOf('commit:2')).toBeGreaterThan(events.indexOf('deadLetter:1'));
    });

    it('retries a failing commit until it is written', async () => {
      const { poller, events, tables } = setup({ pages: pagesOf([[valid('1')]]) });
      tables.failCommit = (call) =>
        call <= 15 ? named('TransactionCanceledException') : undefined;
      const run = poller.run();
      await until(() => tables.checkpointOf(SHARD) === '1', 'the checkpoint at 1');
      poller.stop();
      await run;
      expect(events.filter((e) => e.startsWith('commit-failed'))).toHaveLength(15);
    });

    it('stops without a checkpoint when stopped while the store keeps failing', async () => {
      const { poller, sink, reader, tables } = setup({ pages: pagesOf([[valid('1')]]) });
      sink.failure = () => named('InternalServerError');
      const run = poller.run();
      await until(() => sink.storeAttempts >= 3, 'three failed stores');
      poller.stop();
      await run;
      expect(tables.checkpointOf(SHARD)).toBeUndefined();
      expect(reader.reads).toEqual(['it-1']);
      expect(poller.status().state).toBe('stopped');
      expect(sink.deadLettered).toEqual([]);
    });
  });

  describe('fencing', () => {
    it('a poller whose lease was taken writes nothing more: no commit on stop, no window, state lost', async () => {
      const tables = new FakeTables();
      let taken = false;
      const { poller, sink, log, reader } = setup({
        tables,
        pages: (_it, n) => {
          if (n === 2 && !taken) {
            taken = true;
            tables.take(SHARD, 'worker-b');
          }
          return { records: [valid(String(n), 'c')], next: `after-${n}`, millisBehindLatest: 0 };
        },
      });
      const before = tables.log.length;
      await poller.run();
      expect(poller.status().state).toBe('lost');
      expect(tables.log.slice(before)).toEqual([
        // A busy shard: the window result is written, the checkpoint would come later.
        expect.stringMatching(/^partial c\|5m#.* 1 by epoch 1$/),
        'take shardId-000000000001 worker-b epoch 2',
      ]);
      // The third read overlapped the commit that found the lease gone: nothing of it is stored.
      expect(reader.reads).toEqual(['it-1', 'after-1', 'after-2']);
      expect(sink.stored).toHaveLength(2);
      expect(log.warn).toHaveBeenCalledWith(expect.stringContaining('writing nothing more'));
    });

    it('on stop, commits what it processed; if the lease moved meanwhile, writes nothing', async () => {
      const tables = new FakeTables();
      const a = setup({ tables, pages: pagesOf([[valid('1', 'c')]]) });
      a.tables.failCommit = () => named('InternalServerError'); // the commit stalls…
      const run = a.poller.run();
      await until(() => a.tables.commitCalls >= 2, 'a stalled commit');
      tables.take(SHARD, 'worker-b'); // …and another instance takes the lease meanwhile
      a.tables.failCommit = undefined;
      a.poller.stop();
      await run;
      expect(tables.checkpointOf(SHARD)).toBeUndefined();
      expect(tables.aggregates.size).toBe(0);

      const b = setup({ pages: pagesOf([[valid('1', 'c'), valid('2', 'c')]]) });
      const runB = b.poller.run();
      await until(() => b.sink.stored.length === 1, 'stored');
      b.poller.stop();
      await runB;
      expect(b.tables.checkpointOf(SHARD)).toBe('2');
    });
  });

  it('gives up the last commit on stop once its budget is spent, when the table does not answer', async () => {
    const { poller, tables, log } = setup({ pages: pagesOf([[valid('1', 'c')]]) });
    let release!: () => void;
    const hung = new Promise<void>((resolve) => (release = resolve));
    let stopping = false;
    tables.gate = () => (stopping ? hung : Promise.resolve());
    tables.failCommit = () => (stopping ? undefined : named('InternalServerError'));
    const run = poller.run();
    await until(() => tables.commitCalls >= 2, 'a stalled commit');
    stopping = true;
    poller.stop();
    await run;
    expect(log.warn).toHaveBeenCalledWith(expect.stringContaining('no answer within 1000 ms'));
    expect(tables.checkpointOf(SHARD)).toBeUndefined();
    release();
  });

  describe('the shard', () => {
    it('starts a new lease from TRIM_HORIZON and a held lease after its checkpoint', async () => {
      const fresh = setup();
      await fresh.poller.run();
      expect(fresh.reader.iteratorCalls).toEqual([[SHARD, undefined]]);
      const resumed = setup({ checkpoint: '4959' });
      await resumed.poller.run();
      expect(resumed.reader.iteratorCalls).toEqual([[SHARD, { sequenceNumber: '4959' }]]);
    });

    it('stores the last records of a closed shard, then commits SHARD_END with the state, and ends', async () => {
      const { poller, events, tables, reader } = setup({
        pages: pagesOf([[valid('8', 'c'), valid('9', 'c')]], true),
      });
      await poller.run();
      expect(reader.reads).toEqual(['it-1', 'after-1']);
      expect(commits(events)).toEqual(['commit:undefined', `commit:${SHARD_END}`]);
      expect(tables.checkpointOf(SHARD)).toBe(SHARD_END);
      expect(await tables.loadState(SHARD)).toBeDefined();
      expect(poller.status()).toMatchObject({ state: 'ended', checkpoint: SHARD_END });
    });

    it('never reads a lease whose checkpoint is already SHARD_END', async () => {
      const { poller, reader } = setup({ checkpoint: SHARD_END });
      await poller.run();
      expect(reader.iteratorCalls).toEqual([]);
      expect(poller.status().state).toBe('ended');
    });

    it('asks for a new iterator after what it processed when the iterator expired', async () => {
      const { poller, reader, tables } = setup({
        pages: (iterator) => {
          if (iterator === 'it-1') return { records: [valid('10'), valid('11')], next: 'stale' };
          if (iterator === 'stale') throw named('ExpiredIteratorException', 'Iterator expired');
          return { records: [valid('12')], next: undefined };
        },
      });
      await poller.run();
      expect(reader.iteratorCalls).toEqual([
        [SHARD, undefined],
        [SHARD, { sequenceNumber: '11' }],
      ]);
      expect(reader.reads).toEqual(['it-1', 'stale', 'it-2']);
      expect(tables.checkpointOf(SHARD)).toBe(SHARD_END);
    });

    it('retries another GetRecords error with the same iterator', async () => {
      const { poller, reader } = setup({
        pages: (_it, n) => {
          if (n === 1) throw named('ProvisionedThroughputExceededException', 'Rate exceeded');
          return { records: [], next: undefined };
        },
      });
      await poller.run();
      expect(reader.reads).toEqual(['it-1', 'it-1']);
      expect(reader.iteratorCalls).toHaveLength(1);
      expect(poller.status().state).toBe('ended');
    });

    it('reports millisBehindLatest and the last read time', async () => {
      const { poller } = setup({
        pages: () => ({ records: [], next: undefined, millisBehindLatest: 1234 }),
      });
      await poller.run();
      expect(poller.status().millisBehindLatest).toBe(1234);
      expect(Number.isNaN(Date.parse(poller.status().lastReadAt!))).toBe(false);
    });

    it('ends in state failed, without reading, when its window state cannot be restored', async () => {
      const { poller, reader, tables, log } = setup();
      tables.leases.get(SHARD)!.state = [Buffer.from('not gzip')];
      await poller.run();
      expect(poller.status()).toMatchObject({
        state: 'failed',
        failure: expect.stringContaining('cannot be restored'),
      });
      expect(reader.reads).toEqual([]);
      expect(log.error).toHaveBeenCalled();
    });

    it('an unrestorable state is not retried like an outage', async () => {
      const tables = new FakeTables();
      const { poller } = setup({ tables });
      let loads = 0;
      jest.spyOn(tables, 'loadState').mockImplementation(async () => {
        loads += 1;
        throw new UnrestorableStateError(SHARD, '1 of its 2 chunk(s) are missing');
      });
      await poller.run();
      expect(loads).toBe(1);
      expect(poller.status().state).toBe('failed');
    });
  });
  describe('KPL aggregated records', () => {
    it('processes each user record as a record of its own, next to plain records; a corrupt aggregate goes to the DLQ whole', async () => {
      const poisonUser = { ...garbage('x'), partitionKey: 'user-key' };
      const otherKey = { ...valid('o', 'c'), partitionKey: 'station-9' };
      const corrupt = aggregated('4', [valid('p'), valid('q')]);
      corrupt.data = withBadMd5(Buffer.from(corrupt.data));
      const { poller, sink, tables } = setup({
        pages: pagesOf([
          [
            valid('1', 'c'),
            aggregated('2', [valid('a', 'c'), poisonUser, valid('b', 'c'), otherKey]),
            valid('3', 'c'),
            corrupt,
          ],
        ]),
      });
      const run = poller.run();
      await until(() => tables.checkpointOf(SHARD) === '4', 'the checkpoint at 4');
      poller.stop();
      await run;

      expect(sink.stored.flat().map((m) => m.station_id)).toEqual([
        'st-1',
        'st-a',
        'st-b',
        'st-o',
        'st-3',
      ]);
      expect(sink.deaggregatedCount).toBe(4);
      const [user, whole] = sink.deadLettered.flat();
      expect(user).toMatchObject({
        reason: 'parse_error',
        message: 'record data is not valid JSON',
      });
      expect(user.record).toMatchObject({
        sequenceNumber: '2',
        subSequenceNumber: 1,
        partitionKey: 'user-key',
        data: Buffer.from('this is not json'),
      });
      expect(whole).toEqual({
        record: corrupt,
        shardId: SHARD,
        reason: 'parse_error',
        message: 'KPL aggregated record: MD5 trailer does not match',
      });
      // The user record keyed by a station is stored but not in its city's windows.
      expect([...tables.aggregates.values()].map((a) => a.record_count)).toEqual([4]);
      expect(tables.positionOf(SHARD)).toBe('4');
    });

    it('checkpoints between the user records of an aggregate; the next owner resumes at it and skips what was processed', async () => {
      const users = ['u0', 'u1', 'u2', 'u3', 'u4'].map((s) => valid(s, 'c'));
      const pages = pagesOf([[aggregated('7', users), valid('8', 'c')]]);
      const tables = new FakeTables();
      const a = setup({ tables, pages, timing: { recordsPerStep: 2 } });
      // Stopped while its second step (u2, u3) is being stored.
      a.sink.failure = (batch) => {
        if (batch.some((m) => m.station_id === 'st-u2')) a.poller.stop();
        return undefined;
      };
      await a.poller.run();
      expect(commits(a.events)).toEqual(['commit:7/1', 'commit:7/3']);
      expect(tables.positionOf(SHARD)).toBe('7/3');
      expect(a.poller.status().state).toBe('stopped');

      const b = setup({ tables, pages, owner: 'worker-b', timing: { recordsPerStep: 2 } });
      const run = b.poller.run();
      await until(() => tables.checkpointOf(SHARD) === '8', 'the checkpoint at 8');
      b.poller.stop();
      await run;
      expect(b.reader.iteratorCalls).toEqual([
        [SHARD, { sequenceNumber: '7', subSequenceNumber: 3 }],
      ]);
      const stations = (x: { sink: FakeSink }) => x.sink.stored.flat().map((m) => m.station_id);
      expect(stations(a)).toEqual(['st-u0', 'st-u1', 'st-u2', 'st-u3']);
      expect(stations(b)).toEqual(['st-u4', 'st-8']);
      expect(tables.positionOf(SHARD)).toBe('8');
      expect([...tables.aggregates.values()].map((w) => w.record_count)).toEqual([6]);
    });

    it('commits the last user record of an aggregate as the whole record (no sub-sequence number)', async () => {
      const users = ['u0', 'u1', 'u2', 'u3'].map((s) => valid(s, 'c'));
      const { poller, events, tables } = setup({
        pages: pagesOf([[aggregated('5', users), valid('6', 'c')]]),
        timing: { recordsPerStep: 2 },
      });
      const run = poller.run();
      await until(() => tables.checkpointOf(SHARD) === '6', 'the checkpoint at 6');
      poller.stop();
      await run;
      // Checkpoints between steps, then the page's results, then the checkpoint on the empty read.
      expect(commits(events)).toEqual(['commit:5/1', 'commit:5', 'commit:undefined', 'commit:6']);
    });
  });

  describe('the read pace', () => {
    afterEach(() => jest.useRealTimers());

    /**
     * Runs a poller on fake time whose first read holds a record, from `startAt`; the reads'
     * times. Call jest.useFakeTimers first.
     */
    function pacedPoller(timing: Partial<PollerTiming> = {}) {
      const readAt: number[] = [];
      const first = pagesOf([[valid('1')]]);
      const { poller } = setup({
        pages: (iterator, readNumber) => {
          readAt.push(Date.now());
          return first(iterator, readNumber);
        },
        timing: { minPollIntervalMs: 250, idleDelayMs: 5000, idleAfterMs: 1000, ...timing },
      });
      return { poller, readAt, run: () => poller.run() };
    }

    /** One paced poller started at time 0. */
    function startedPoller() {
      jest.useFakeTimers({ now: 0 });
      const paced = pacedPoller();
      return { ...paced, run: paced.run() };
    }

    it('keeps the busy pace while records come or for idleAfterMs after, then reads on the idle beat, once per idle interval', async () => {
      const { poller, readAt, run } = startedPoller();
      await jest.advanceTimersByTimeAsync(12_000);
      poller.stop();
      await run;
      // Empty since 250 ms: idle from the read at 1,250 ms on, then on the beat (multiples of 5 s).
      expect(readAt).toEqual([0, 250, 500, 750, 1000, 1250, 5000, 10000]);
    });

    it('idle shards that went idle at different times read together, on the beat of their phase', async () => {
      jest.useFakeTimers({ now: 0 });
      const a = pacedPoller({ idlePhaseMs: 700 });
      const b = pacedPoller({ idlePhaseMs: 700 });
      const runA = a.run();
      await jest.advanceTimersByTimeAsync(1900);
      const runB = b.run();
      await jest.advanceTimersByTimeAsync(14_000);
      a.poller.stop();
      b.poller.stop();
      await Promise.all([runA, runB]);
      // A idle from 1,250 ms, B (started at 1,900 ms) from 3,150 ms: both then read at 5,700,
      // 10,700 and 15,700 ms, the beat of phase 700 ms.
      expect(a.readAt.slice(5)).toEqual([1250, 5700, 10700, 15700]);
      expect(b.readAt.slice(5)).toEqual([3150, 5700, 10700, 15700]);
    });

    it('reads at once when woken while idle, then keeps the busy pace until idle again', async () => {
      const { poller, readAt, run } = startedPoller();
      await jest.advanceTimersByTimeAsync(3000);
      expect(readAt.at(-1)).toBe(1250);
      poller.wake();
      await jest.advanceTimersByTimeAsync(2000);
      poller.stop();
      await run;
      // Idle again from the read at 4,000 ms: the next is on the beat.
      expect(readAt.slice(6)).toEqual([3000, 3250, 3500, 3750, 4000, 5000]);
    });

    it('never reads sooner than the busy pace after the last read, woken or not', async () => {
      const { poller, readAt, run } = startedPoller();
      await jest.advanceTimersByTimeAsync(1300);
      expect(readAt.at(-1)).toBe(1250);
      poller.wake();
      await jest.advanceTimersByTimeAsync(100);
      expect(readAt.at(-1)).toBe(1250);
      await jest.advanceTimersByTimeAsync(200);
      poller.stop();
      await run;
      expect(readAt.at(-1)).toBe(1500);
    });
  });
});
