import { Measurement } from '../domain/measurement';
import { DeadLetter } from './dead-letter.repository';
import { Lease, LeaseLostError, SHARD_END } from './lease.repository';
import { StreamRecord } from './record-decoder';
import type { Aggregate } from '../aggregation/window-aggregator';
import { WindowAggregator } from '../aggregation/window-aggregator';
import { parseWindowSizes } from '../aggregation/windows';
import {
  BatchSink,
  Checkpointer,
  PollerLog,
  PollerTiming,
  ShardPoller,
  ShardAggregation,
  ShardReader,
} from './shard-poller';

const SHARD = 'shardId-000000000001';
const TIMING: PollerTiming = {
  maxAttempts: 1_000_000,
  minPollIntervalMs: 0,
  idleDelayMs: 1,
  retryBaseMs: 1,
  retryCapMs: 2,
};

type Page = Awaited<ReturnType<ShardReader['read']>>;

const makeLease = (checkpoint?: string): Lease => ({
  leaseKey: SHARD,
  leaseOwner: 'worker-a',
  leaseCounter: 3,
  parentShardIds: [],
  ownerSwitchesSinceCheckpoint: 0,
  ...(checkpoint === undefined ? {} : { checkpoint }),
});

/** A valid measurement record (event time in the past). */
const valid = (seq: string, city = `city-${seq}`): StreamRecord => ({
  data: Buffer.from(
    JSON.stringify({
      city_id: city,
      city_name: city.toUpperCase(),
      timestamp: '2025-06-01T08:00:00Z',
      pm25_value: 12.0,
      pm10_value: 80,
      temperature_c: 18.4,
      ingestion_timestamp: '2025-06-01T08:00:01.000Z',
    }),
  ),
  sequenceNumber: seq,
  partitionKey: city,
});

/** Not JSON: dead-lettered as parse_error. */
const garbage = (seq: string): StreamRecord => ({
  data: Buffer.from('this is not json'),
  sequenceNumber: seq,
  partitionKey: 'x',
});

/** JSON, but pm25_value out of range: dead-lettered as validation_error. */
const invalid = (seq: string): StreamRecord => {
  const record = valid(seq);
  const value = JSON.parse(Buffer.from(record.data).toString('utf8'));
  value.pm25_value = -3;
  return { ...record, data: Buffer.from(JSON.stringify(value)) };
};

/** Shared, ordered log of every sink and checkpoint call. */
type Events = string[];

/** `failures` leading calls throw, then the call succeeds. */
class FakeSink implements BatchSink {
  stored: Measurement[][] = [];
  deadLettered: DeadLetter[][] = [];
  storeFailures = 0;
  deadLetterFailures = 0;
  onStore?: (attempt: number) => void;
  private storeAttempts = 0;
  private deadLetterAttempts = 0;

  constructor(private readonly events: Events) {}

  async store(measurements: Measurement[]): Promise<void> {
    this.storeAttempts += 1;
    this.onStore?.(this.storeAttempts);
    if (this.storeAttempts <= this.storeFailures) {
      this.events.push('store:failed');
      throw Object.assign(new Error('throttled'), {
        name: 'ProvisionedThroughputExceededException',
      });
    }
    this.events.push(`store:${measurements.length}`);
    this.stored.push(measurements);
  }

  async deadLetter(letters: DeadLetter[]): Promise<void> {
    this.deadLetterAttempts += 1;
    if (this.deadLetterAttempts <= this.deadLetterFailures) {
      this.events.push('deadLetter:failed');
      throw new Error('dlq table unreachable');
    }
    this.events.push(`deadLetter:${letters.length}`);
    this.deadLettered.push(letters);
  }
}

/** Moves lease.checkpoint like the real repository; `fail` decides what a call throws. */
class FakeCheckpointer implements Checkpointer {
  calls: string[] = [];
  fail?: (sequenceNumber: string) => Error | undefined;

  constructor(private readonly events: Events) {}

  async checkpoint(lease: Lease, sequenceNumber: string): Promise<void> {
    const error = this.fail?.(sequenceNumber);
    if (error) {
      this.events.push(`checkpoint-failed:${sequenceNumber}`);
      throw error;
    }
    this.events.push(`checkpoint:${sequenceNumber}`);
    this.calls.push(sequenceNumber);
    lease.checkpoint = sequenceNumber;
  }
}

/** Iterators are handed out as it-1, it-2, …; `pages` answers each read by iterator. */
class FakeReader implements ShardReader {
  iteratorCalls: [string, string | undefined][] = [];
  reads: string[] = [];
  private issued = 0;

  constructor(private readonly pages: (iterator: string, readNumber: number) => Page) {}

  async iterator(shardId: string, checkpoint: string | undefined): Promise<string> {
    this.iteratorCalls.push([shardId, checkpoint]);
    this.issued += 1;
    return `it-${this.issued}`;
  }

  async read(iterator: string): Promise<Page> {
    this.reads.push(iterator);
    return this.pages(iterator, this.reads.length);
  }
}

function setup(
  options: {
    lease?: Lease;
    pages?: (iterator: string, readNumber: number) => Page;
    timing?: Partial<PollerTiming>;
  } = {},
) {
  const events: Events = [];
  const lease = options.lease ?? makeLease();
  const sink = new FakeSink(events);
  const checkpointer = new FakeCheckpointer(events);
  const reader = new FakeReader(options.pages ?? (() => ({ records: [], next: undefined })));
  const log: PollerLog = { warn: jest.fn(), error: jest.fn() };
  const poller = new ShardPoller(lease, reader, sink, checkpointer, log, {
    ...TIMING,
    ...options.timing,
  });
  return { events, lease, sink, checkpointer, reader, log, poller };
}

const cities = (batch: Measurement[]) => batch.map((m) => m.city_id);

describe('ShardPoller', () => {
  describe('processBatch: checkpoint decisions', () => {
    it('checkpoints the last sequence number once every record is stored', async () => {
      const { poller, sink, checkpointer, lease, events } = setup();

      await expect(poller.processBatch([valid('101'), valid('102'), valid('103')])).resolves.toBe(
        true,
      );

      expect(sink.stored).toHaveLength(1);
      expect(cities(sink.stored[0])).toEqual(['city-101', 'city-102', 'city-103']);
      expect(sink.stored[0][0].aqi_value).toBe(63);
      expect(sink.deadLettered).toEqual([]);
      expect(checkpointer.calls).toEqual(['103']);
      expect(lease.checkpoint).toBe('103');
      expect(events).toEqual(['store:3', 'checkpoint:103']);
    });

    it('dead-letters a poison record with its reason, stores the valid ones, and checkpoints after both', async () => {
      const { poller, sink, checkpointer, events } = setup();
      const poisonParse = garbage('2');
      const poisonInvalid = invalid('4');

      await expect(
        poller.processBatch([valid('1'), poisonParse, valid('3'), poisonInvalid, valid('5')]),
      ).resolves.toBe(true);

      expect(cities(sink.stored[0])).toEqual(['city-1', 'city-3', 'city-5']);
      expect(sink.deadLettered).toHaveLength(1);
      const [parse, validation] = sink.deadLettered[0];
      expect(parse).toEqual({
        record: poisonParse,
        shardId: SHARD,
        reason: 'parse_error',
        message: 'record data is not valid JSON',
      });
      expect(validation.record).toBe(poisonInvalid);
      expect(validation.shardId).toBe(SHARD);
      expect(validation.reason).toBe('validation_error');
      expect(validation.message).toContain('pm25_value');
      expect(checkpointer.calls).toEqual(['5']);
      expect(events.indexOf('checkpoint:5')).toBe(events.length - 1);
      expect(events.slice(0, 2).sort()).toEqual(['deadLetter:2', 'store:3']);
    });

    it('checkpoints past a batch that ends with a poison record', async () => {
      const { poller, sink, checkpointer } = setup();
      await expect(poller.processBatch([valid('1'), garbage('2')])).resolves.toBe(true);
      expect(sink.deadLettered[0].map((l) => l.record.sequenceNumber)).toEqual(['2']);
      expect(checkpointer.calls).toEqual(['2']);
    });

    it('checkpoints a batch made only of poison records without calling store', async () => {
      const { poller, sink, events } = setup();
      await expect(poller.processBatch([garbage('7'), invalid('8')])).resolves.toBe(true);
      expect(sink.stored).toEqual([]);
      expect(events).toEqual(['deadLetter:2', 'checkpoint:8']);
    });

    it('retries a failing store and checkpoints only after it succeeded', async () => {
      const { poller, sink, events, log } = setup();
      sink.storeFailures = 2;

      await expect(poller.processBatch([valid('1'), valid('2')])).resolves.toBe(true);

      expect(events).toEqual(['store:failed', 'store:failed', 'store:2', 'checkpoint:2']);
      expect(log.warn).toHaveBeenCalledTimes(2);
    });

    it('does not checkpoint until a failing dead-letter write succeeds', async () => {
      const { poller, sink, events } = setup();
      sink.deadLetterFailures = 3;

      await expect(poller.processBatch([valid('1'), garbage('2'), valid('3')])).resolves.toBe(true);

      expect(events.filter((e) => e.startsWith('deadLetter'))).toEqual([
        'deadLetter:failed',
        'deadLetter:failed',
        'deadLetter:failed',
        'deadLetter:1',
      ]);
      expect(events.filter((e) => e.startsWith('checkpoint'))).toEqual(['checkpoint:3']);
      expect(events.indexOf('checkpoint:3')).toBeGreaterThan(events.indexOf('deadLetter:1'));
      expect(events.indexOf('checkpoint:3')).toBeGreaterThan(events.indexOf('store:2'));
      expect(events[events.length - 1]).toBe('checkpoint:3');
    });

    it('returns false and writes no checkpoint when stopped while the store keeps failing', async () => {
      const { poller, sink, checkpointer, lease } = setup({ lease: makeLease('0') });
      sink.storeFailures = Number.POSITIVE_INFINITY;
      sink.onStore = (attempt) => {
        if (attempt === 2) poller.stop();
      };

      await expect(poller.processBatch([valid('1'), valid('2')])).resolves.toBe(false);

      expect(sink.stored).toEqual([]);
      expect(checkpointer.calls).toEqual([]);
      expect(lease.checkpoint).toBe('0');
    });

    it('retries a failing checkpoint until it is written', async () => {
      const { poller, checkpointer, events } = setup();
      let failures = 2;
      checkpointer.fail = () => (failures-- > 0 ? new Error('dynamodb timeout') : undefined);

      await expect(poller.processBatch([valid('1')])).resolves.toBe(true);

      expect(events).toEqual([
        'store:1',
        'checkpoint-failed:1',
        'checkpoint-failed:1',
        'checkpoint:1',
      ]);
    });

    it('propagates LeaseLostError from the checkpoint without retrying', async () => {
      const { poller, checkpointer, events } = setup();
      checkpointer.fail = () => new LeaseLostError(SHARD);

      await expect(poller.processBatch([valid('1')])).rejects.toBeInstanceOf(LeaseLostError);
      expect(events).toEqual(['store:1', 'checkpoint-failed:1']);
    });
  });

  describe('run()', () => {
    it('starts a new lease from TRIM_HORIZON (no checkpoint) and a held lease after its checkpoint', async () => {
      const fresh = setup();
      await fresh.poller.run();
      expect(fresh.reader.iteratorCalls).toEqual([[SHARD, undefined]]);

      const resumed = setup({
        lease: makeLease('49590338271490256608559692538361571095921575989136588898'),
      });
      await resumed.poller.run();
      expect(resumed.reader.iteratorCalls).toEqual([
        [SHARD, '49590338271490256608559692538361571095921575989136588898'],
      ]);
    });

    it('checkpoints every page, then SHARD_END when the shard is closed, and ends', async () => {
      const { poller, reader, checkpointer } = setup({
        pages: (iterator) => {
          switch (iterator) {
            case 'it-1':
              return { records: [valid('1'), valid('2')], next: 'page-2', millisBehindLatest: 500 };
            case 'page-2':
              return { records: [valid('3')], next: 'page-3', millisBehindLatest: 0 };
            default:
              return { records: [], next: undefined };
          }
        },
      });

      await poller.run();

      expect(reader.reads).toEqual(['it-1', 'page-2', 'page-3']);
      expect(checkpointer.calls).toEqual(['2', '3', SHARD_END]);
      expect(poller.status()).toMatchObject({
        shardId: SHARD,
        state: 'ended',
        checkpoint: SHARD_END,
      });
    });

    it('stores the last records of a closed shard before checkpointing SHARD_END', async () => {
      const { poller, events } = setup({
        pages: () => ({ records: [valid('8'), valid('9')], next: undefined }),
      });

      await poller.run();

      expect(events).toEqual(['store:2', 'checkpoint:9', `checkpoint:${SHARD_END}`]);
      expect(poller.status().state).toBe('ended');
    });

    it('never reads a lease whose checkpoint is already SHARD_END', async () => {
      const { poller, reader, checkpointer } = setup({ lease: makeLease(SHARD_END) });

      await poller.run();

      expect(reader.iteratorCalls).toEqual([]);
      expect(reader.reads).toEqual([]);
      expect(checkpointer.calls).toEqual([]);
      expect(poller.status().state).toBe('ended');
    });

    it('ends in state lost when the checkpoint reports the lease lost', async () => {
      const { poller, reader, checkpointer, sink, log } = setup({
        pages: () => ({ records: [valid('1')], next: 'more' }),
      });
      checkpointer.fail = () => new LeaseLostError(SHARD);

      await expect(poller.run()).resolves.toBeUndefined();

      expect(poller.status().state).toBe('lost');
      expect(reader.reads).toEqual(['it-1']); // it stops reading
      expect(sink.stored).toHaveLength(1);
      expect(checkpointer.calls).toEqual([]);
      expect(log.warn).toHaveBeenCalledWith(expect.stringContaining(SHARD));
    });

    it('asks for a new iterator from the current checkpoint when the iterator expired', async () => {
      const { poller, reader, checkpointer } = setup({
        pages: (iterator) => {
          if (iterator === 'it-1') return { records: [valid('10'), valid('11')], next: 'stale' };
          if (iterator === 'stale') {
            throw Object.assign(new Error('Iterator expired'), {
              name: 'ExpiredIteratorException',
            });
          }
          return { records: [valid('12')], next: undefined };
        },
      });

      await poller.run();

      expect(reader.iteratorCalls).toEqual([
        [SHARD, undefined],
        [SHARD, '11'],
      ]);
      expect(reader.reads).toEqual(['it-1', 'stale', 'it-2']);
      expect(checkpointer.calls).toEqual(['11', '12', SHARD_END]);
      expect(poller.status().state).toBe('ended');
    });

    it('retries another GetRecords error with the same iterator', async () => {
      const { poller, reader, log } = setup({
        pages: (_iterator, readNumber) => {
          if (readNumber === 1) {
            throw Object.assign(new Error('Rate exceeded'), {
              name: 'ProvisionedThroughputExceededException',
            });
          }
          return { records: [], next: undefined };
        },
      });

      await poller.run();

      expect(reader.reads).toEqual(['it-1', 'it-1']);
      expect(reader.iteratorCalls).toHaveLength(1);
      expect(log.warn).toHaveBeenCalledTimes(1);
      expect(poller.status().state).toBe('ended');
    });

    it('reports millisBehindLatest and the last read time', async () => {
      const { poller } = setup({
        pages: () => ({ records: [], next: undefined, millisBehindLatest: 1234 }),
      });
      await poller.run();
      const status = poller.status();
      expect(status.millisBehindLatest).toBe(1234);
      expect(Number.isNaN(Date.parse(status.lastReadAt!))).toBe(false);
    });

    it('stops on stop() while idle and resolves in state stopped', async () => {
      const { poller, reader, checkpointer } = setup({
        pages: (_iterator, readNumber) => {
          if (readNumber === 3) poller.stop();
          return { records: [], next: `after-${readNumber}` };
        },
      });

      await poller.run();

      expect(reader.reads).toEqual(['it-1', 'after-1', 'after-2']);
      expect(checkpointer.calls).toEqual([]);
      expect(poller.status().state).toBe('stopped');
    });

    it('stops without a checkpoint when stopped while the store keeps failing', async () => {
      const { poller, sink, checkpointer, reader } = setup({
        pages: () => ({ records: [valid('1')], next: 'more' }),
      });
      sink.storeFailures = Number.POSITIVE_INFINITY;
      sink.onStore = (attempt) => {
        if (attempt === 3) poller.stop();
      };

      await poller.run();

      expect(checkpointer.calls).toEqual([]);
      expect(reader.reads).toEqual(['it-1']);
      expect(poller.status().state).toBe('stopped');
    });
  });

  describe('bounded processing retries', () => {
    it('dead-letters the records as processing_error after maxAttempts failed stores, then checkpoints', async () => {
      const { poller, sink, checkpointer } = setup({
        lease: makeLease('0'),
        timing: { maxAttempts: 3 },
      });
      sink.storeFailures = Number.POSITIVE_INFINITY;

      await expect(poller.processBatch([valid('1'), garbage('2'), valid('3')])).resolves.toBe(true);

      const letters = sink.deadLettered.flat();
      expect(letters.map((l) => [l.record.sequenceNumber, l.reason]).sort()).toEqual([
        ['1', 'processing_error'],
        ['2', 'parse_error'],
        ['3', 'processing_error'],
      ]);
      expect(letters.find((l) => l.record.sequenceNumber === '1')!.message).toMatch(
        /ProvisionedThroughputExceededException/,
      );
      // 3 batch attempts, then one attempt per record.
      expect(sink.stored).toEqual([]);
      expect(checkpointer.calls).toEqual(['3']);
    });

    it('stores the records that succeed alone and dead-letters only the one that fails', async () => {
      const { poller, sink, checkpointer } = setup({
        lease: makeLease('0'),
        timing: { maxAttempts: 2 },
      });
      const bad = valid('2', 'bad-city');
      sink.store = async (measurements: Measurement[]) => {
        if (measurements.some((m) => m.city_id === 'bad-city')) {
          throw Object.assign(new Error('Number overflow'), { name: 'ValidationException' });
        }
        sink.stored.push(measurements);
      };

      await expect(poller.processBatch([valid('1'), bad, valid('3')])).resolves.toBe(true);

      expect(sink.stored.map(cities)).toEqual([['city-1'], ['city-3']]);
      expect(sink.deadLettered.flat().map((l) => [l.record.sequenceNumber, l.reason])).toEqual([
        ['2', 'processing_error'],
      ]);
      expect(checkpointer.calls).toEqual(['3']);
    });

    it('does not retry a ValidationException: the batch is split at once', async () => {
      const { poller, sink } = setup({ lease: makeLease('0'), timing: { maxAttempts: 5 } });
      let calls = 0;
      sink.store = async () => {
        calls += 1;
        throw Object.assign(new Error('invalid'), { name: 'ValidationException' });
      };

      await poller.processBatch([valid('1'), valid('2')]);

      expect(calls).toBe(3); // the batch once, then each record once
      expect(sink.deadLettered.flat()).toHaveLength(2);
    });

    it('keeps retrying the dead-letter write of processing errors: nothing is checkpointed before it', async () => {
      const { poller, sink, checkpointer, events } = setup({
        lease: makeLease('0'),
        timing: { maxAttempts: 1 },
      });
      sink.storeFailures = Number.POSITIVE_INFINITY;
      sink.deadLetterFailures = 4;

      await expect(poller.processBatch([valid('1')])).resolves.toBe(true);

      expect(events.filter((e) => e === 'deadLetter:failed')).toHaveLength(4);
      expect(events.indexOf('checkpoint:1')).toBeGreaterThan(
        events.lastIndexOf('deadLetter:failed'),
      );
      expect(checkpointer.calls).toEqual(['1']);
    });

    it('dead-letters a record whose decoding throws as processing_error instead of stopping the shard', async () => {
      const { poller, sink, checkpointer } = setup({ lease: makeLease('0') });
      // Nesting deep enough to overflow a recursive walker.
      const deep = '{"city_name":' + '['.repeat(20000) + ']'.repeat(20000) + '}';
      const records = [
        valid('1'),
        { data: Buffer.from(deep), sequenceNumber: '2', partitionKey: 'x' },
        valid('3'),
      ];

      await expect(poller.processBatch(records)).resolves.toBe(true);

      expect(sink.stored.flat().map((m) => m.city_id)).toEqual(['city-1', 'city-3']);
      const letter = sink.deadLettered.flat()[0];
      expect(letter.record.sequenceNumber).toBe('2');
      expect(['validation_error', 'processing_error', 'parse_error']).toContain(letter.reason);
      expect(checkpointer.calls).toEqual(['3']);
    });
  });

  describe('with window aggregation', () => {
    /** A fake aggregation around the real WindowAggregator, with a sink that can fail. */
    function aggregated(pages: (iterator: string, readNumber: number) => Page) {
      const events: Events = [];
      const lease = makeLease('0');
      const sink = new FakeSink(events);
      const states: { sequenceNumber: string; state?: Buffer[] }[] = [];
      const checkpointer: Checkpointer = {
        checkpoint: async (l, sequenceNumber, state) => {
          events.push(`checkpoint:${sequenceNumber}`);
          states.push({ sequenceNumber, state });
          l.checkpoint = sequenceNumber;
        },
      };
      const core = new WindowAggregator({
        sizes: parseWindowSizes('5m'),
        outOfOrdernessMs: 0,
        allowedLatenessMs: 0,
        idleMs: 1,
      });
      const written: Aggregate[] = [];
      const aggregation: ShardAggregation & { failWrites: boolean } = {
        failWrites: false,
        flushMs: 0,
        restore: async () => undefined,
        add: (ms, now) => ms.forEach((m) => core.add(m, now)),
        collect: (now, caughtUp, flush) => core.collect(now, caughtUp, flush),
        write: async (aggregates) => {
          if (aggregation.failWrites) throw new Error('aggregates table unavailable');
          written.push(...aggregates);
          core.confirm(aggregates);
        },
        snapshot: () => [Buffer.from(JSON.stringify(core.snapshot()))],
      };
      const log: PollerLog = { warn: jest.fn(), error: jest.fn() };
      const poller = new ShardPoller(
        lease,
        new FakeReader(pages),
        sink,
        checkpointer,
        log,
        TIMING,
        aggregation,
      );
      return { poller, events, states, written, aggregation, sink };
    }
    const windows = (state?: Buffer[]) =>
      (JSON.parse(Buffer.concat(state ?? []).toString()) as { windows: unknown[][] }).windows.map(
        (w) => w[1],
      );

    it('checkpoints after the stores, with the window state, and writes the aggregates first', async () => {
      const { poller, events, states, written } = aggregated((_it, n) =>
        n === 1
          ? { records: [valid('1', 'a'), valid('2', 'b')], next: 'more' }
          : { records: [], next: undefined },
      );
      await poller.run();
      expect(events.indexOf('store:2')).toBeLessThan(events.indexOf('checkpoint:2'));
      expect(states[0]).toMatchObject({ sequenceNumber: '2' });
      expect(windows(states[0].state).sort()).toEqual(['a', 'b']);
      expect(written.map((a) => a.city_id).sort()).toEqual(['a', 'b']);
      expect(states[states.length - 1].sequenceNumber).toBe('SHARD_END');
    });

    it('keeps a final window in the checkpointed state when its write fails and the poller is stopped', async () => {
      const later = (seq: string, city: string, timestamp: string): StreamRecord => {
        const record = valid(seq, city);
        const value = JSON.parse(Buffer.from(record.data).toString('utf8'));
        return {
          ...record,
          data: Buffer.from(
            JSON.stringify({ ...value, timestamp, ingestion_timestamp: timestamp }),
          ),
        };
      };
      const { poller, states, written, aggregation } = aggregated((_it, n) => {
        if (n > 20) poller.stop(); // a safety net: the write below should have stopped it
        if (n === 1) return { records: [valid('1', 'a')], next: 'more' };
        // Past the end of a's window: a becomes final in this batch's commit, whose write fails.
        aggregation.failWrites = true;
        return { records: [later('2', 'b', '2025-06-01T08:07:00Z')], next: 'more' };
      });
      const write = aggregation.write;
      aggregation.write = async (aggregates) => {
        if (aggregation.failWrites) poller.stop();
        return write(aggregates);
      };
      await poller.run();
      expect(written.filter((a) => a.final)).toEqual([]);
      // The position of record 2 is checkpointed, and a's window with it, for the next owner.
      const last = states[states.length - 1];
      expect(last.sequenceNumber).toBe('2');
      expect(windows(last.state).sort()).toEqual(['a', 'b']);
    });
  });
});
