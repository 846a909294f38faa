import type { PutRecordsRequestEntry, PutRecordsResultEntry } from '@aws-sdk/client-kinesis';
import { AppError, ErrorCode } from '../common/app-error';
import {
  BatchingProducer,
  MAX_BYTES_PER_CALL,
  MAX_RECORDS_PER_CALL,
  ProducerOptions,
  PutRecordsFn,
} from './batching-producer';

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
}

function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Tracks whether a promise settled, without awaiting it. */
function track<T>(promise: Promise<T>): { settled: () => boolean; promise: Promise<T> } {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  return { settled: () => settled, promise };
}

/** Lets every pending promise callback and immediate run (not a timed sleep). */
const drainMicrotasks = () => new Promise<void>((resolve) => setImmediate(resolve));

let sequence = 0;
const success = (): PutRecordsResultEntry => ({
  SequenceNumber: String(++sequence),
  ShardId: 'shardId-000000000000',
});
const failure = (code = 'ProvisionedThroughputExceededException'): PutRecordsResultEntry => ({
  ErrorCode: code,
  ErrorMessage: 'Rate exceeded for shard shardId-000000000000',
});

type Handler = (
  entries: PutRecordsRequestEntry[],
  call: number,
) => Promise<PutRecordsResultEntry[]>;

/** A fake PutRecords: records every call and answers with `handler` (all acknowledged by default). */
class FakeKinesis {
  readonly calls: PutRecordsRequestEntry[][] = [];
  private waiters: { count: number; resolve: () => void }[] = [];

  constructor(public handler: Handler = async (entries) => entries.map(success)) {}

  readonly put: PutRecordsFn = (entries) => {
    const call = this.calls.length;
    this.calls.push([...entries]);
    this.waiters = this.waiters.filter((w) =>
      this.calls.length >= w.count ? (w.resolve(), false) : true,
    );
    return this.handler(entries, call);
  };

  /** Resolves once at least `count` calls were made. */
  waitForCalls(count: number): Promise<void> {
    if (this.calls.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ count, resolve }));
  }

  keys(call: number): string[] {
    return this.calls[call].map((e) => e.PartitionKey!);
  }
}

const rec = (i: number, bytes?: number) => ({
  data: bytes === undefined ? Buffer.from(`{"n":${i}}`) : Buffer.alloc(bytes, 0x61),
  partitionKey: `k${i}`,
});
const recs = (from: number, count: number) =>
  Array.from({ length: count }, (_, i) => rec(from + i));

const options = (overrides: Partial<ProducerOptions> = {}): ProducerOptions => ({
  lingerMs: 5,
  deadlineMs: 2000,
  maxBufferedRecords: 10_000,
  backoffBaseMs: 1,
  backoffCapMs: 4,
  random: () => 0,
  ...overrides,
});

async function expectAppError(promise: Promise<unknown>, code: ErrorCode): Promise<AppError> {
  const error = await promise.then(
    () => {
      throw new Error(`expected a rejection with ${code}`);
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AppError);
  expect((error as AppError).code).toBe(code);
  return error as AppError;
}

describe('BatchingProducer', () => {
  describe('batching', () => {
    it('batches concurrent sends within the linger into one PutRecords call, in order', async () => {
      const kinesis = new FakeKinesis();
      const producer = new BatchingProducer(kinesis.put, options({ lingerMs: 10 }));

      const sends = [
        producer.send([rec(1)]),
        producer.send([rec(2), rec(3)]),
        producer.send([rec(4)]),
      ];
      expect(kinesis.calls).toHaveLength(0); // still lingering
      await Promise.all(sends);

      expect(kinesis.calls).toHaveLength(1);
      expect(kinesis.keys(0)).toEqual(['k1', 'k2', 'k3', 'k4']);
      expect(kinesis.calls[0][1].Data).toEqual(rec(2).data);
      expect(producer.bufferedRecords).toBe(0);
    });

    it('sends at once without lingering when lingerMs is 0', () => {
      const kinesis = new FakeKinesis();
      const producer = new BatchingProducer(kinesis.put, options({ lingerMs: 0 }));
      void producer.send([rec(1)]);
      expect(kinesis.calls).toHaveLength(1);
    });

    it('resolves an empty send without any call', async () => {
      const kinesis = new FakeKinesis();
      const producer = new BatchingProducer(kinesis.put, options());
      await producer.send([]);
      await producer.close();
      expect(kinesis.calls).toHaveLength(0);
    });

    it('splits more than 500 records into calls of at most 500', async () => {
      const kinesis = new FakeKinesis();
      const producer = new BatchingProducer(kinesis.put, options());

      await producer.send(recs(0, 1201));

      expect(kinesis.calls.map((c) => c.length)).toEqual([500, 500, 201]);
      expect(kinesis.calls.flat().map((e) => e.PartitionKey)).toEqual(
        recs(0, 1201).map((r) => r.partitionKey),
      );
      expect(Math.max(...kinesis.calls.map((c) => c.length))).toBeLessThanOrEqual(
        MAX_RECORDS_PER_CALL,
      );
    });

    it('flushes as soon as 500 records are buffered from several sends', async () => {
      const kinesis = new FakeKinesis();
      // a linger far longer than the test timeout: only a full batch can trigger the call
      const producer = new BatchingProducer(kinesis.put, options({ lingerMs: 60_000 }));
      const first = producer.send(recs(0, 300));
      const second = producer.send(recs(300, 200));
      await Promise.all([first, second]);
      expect(kinesis.calls.map((c) => c.length)).toEqual([500]);
    });

    it('splits a batch above 5 MB into calls of at most 5 MB', async () => {
      const kinesis = new FakeKinesis();
      const producer = new BatchingProducer(kinesis.put, options());
      const mib = 1024 * 1024;

      await producer.send(Array.from({ length: 6 }, (_, i) => rec(i, mib)));

      const bytes = (call: PutRecordsRequestEntry[]) =>
        call.reduce((sum, e) => sum + e.Data!.byteLength + Buffer.byteLength(e.PartitionKey!), 0);
      expect(kinesis.calls.length).toBe(2);
      for (const call of kinesis.calls) expect(bytes(call)).toBeLessThanOrEqual(MAX_BYTES_PER_CALL);
      // 5 × 1 MiB + the partition keys exceed 5 MiB, so the first call holds 4
      expect(kinesis.calls.map((c) => c.length)).toEqual([4, 2]);
      expect(kinesis.calls.flat().map((e) => e.PartitionKey)).toEqual([
        'k0',
        'k1',
        'k2',
        'k3',
        'k4',
        'k5',
      ]);
    });
  });

  describe('retries', () => {
    it('retries only the failed entries of a partial failure and resolves after they are acknowledged', async () => {
      const second = deferred<PutRecordsResultEntry[]>();
      const kinesis = new FakeKinesis(async (entries, call) => {
        if (call === 0) return entries.map((_, i) => (i === 1 || i === 3 ? failure() : success()));
        return second.promise;
      });
      const retries: [number, string][] = [];
      const producer = new BatchingProducer(
        kinesis.put,
        options({ onRetry: (count, reason) => retries.push([count, reason]) }),
      );

      const send = track(producer.send(recs(0, 5)));
      await kinesis.waitForCalls(2);

      expect(kinesis.keys(0)).toEqual(['k0', 'k1', 'k2', 'k3', 'k4']);
      expect(kinesis.keys(1)).toEqual(['k1', 'k3']);
      expect(kinesis.calls[1].map((e) => e.Data)).toEqual([rec(1).data, rec(3).data]);
      expect(retries).toEqual([[2, 'ProvisionedThroughputExceededException']]);

      await drainMicrotasks();
      expect(send.settled()).toBe(false); // k1 and k3 are not acknowledged yet
      expect(producer.bufferedRecords).toBe(2);

      second.resolve([success(), success()]);
      await expect(send.promise).resolves.toBeUndefined();
      expect(kinesis.calls).toHaveLength(2);
      expect(producer.bufferedRecords).toBe(0);
    });

    it('treats a missing result entry as a failure and retries it', async () => {
      const kinesis = new FakeKinesis(async (entries, call) =>
        call === 0 ? entries.slice(0, 1).map(success) : entries.map(success),
      );
      const producer = new BatchingProducer(kinesis.put, options());
      await producer.send(recs(0, 3));
      expect(kinesis.keys(1)).toEqual(['k1', 'k2']);
    });

    it('retries every entry of a call that throws', async () => {
      const kinesis = new FakeKinesis(async (entries, call) => {
        if (call === 0) throw Object.assign(new Error('socket hang up'), { name: 'TimeoutError' });
        return entries.map(success);
      });
      const retries: [number, string][] = [];
      const producer = new BatchingProducer(
        kinesis.put,
        options({ onRetry: (count, reason) => retries.push([count, reason]) }),
      );

      await producer.send(recs(0, 3));

      expect(kinesis.calls).toHaveLength(2);
      expect(kinesis.keys(1)).toEqual(['k0', 'k1', 'k2']);
      expect(retries).toEqual([[3, 'TimeoutError']]);
    });

    it('resolves each send independently: a send whose records all succeeded does not wait for another', async () => {
      const kinesis = new FakeKinesis(async (entries, call) => {
        if (call === 0)
          return entries.map((e) => (e.PartitionKey === 'k2' ? failure() : success()));
        return new Promise<never>(() => undefined); // the retry of k2 never answers
      });
      const producer = new BatchingProducer(kinesis.put, options());
      const a = producer.send([rec(1)]);
      const b = track(producer.send([rec(2)]));
      await a;
      await kinesis.waitForCalls(2);
      expect(b.settled()).toBe(false);
    });

    it('rejects with STREAM_UNAVAILABLE and a Retry-After past the deadline', async () => {
      const kinesis = new FakeKinesis(async (entries) => entries.map(() => failure()));
      const producer = new BatchingProducer(
        kinesis.put,
        options({ deadlineMs: 200, backoffBaseMs: 2, backoffCapMs: 8, random: () => 1 }),
      );

      const error = await expectAppError(producer.send(recs(0, 2)), ErrorCode.StreamUnavailable);

      expect(error.retryAfterSeconds).toBeGreaterThanOrEqual(1);
      expect(kinesis.calls.length).toBeGreaterThanOrEqual(2); // it did retry before giving up
      // Entries still waiting for a retry are dropped when they come back.
      await producer.close();
      expect(producer.bufferedRecords).toBe(0);
    });

    it('rejects at the deadline even when a PutRecords call never answers', async () => {
      const kinesis = new FakeKinesis(() => new Promise<never>(() => undefined));
      const producer = new BatchingProducer(kinesis.put, options({ deadlineMs: 100 }));

      await expectAppError(producer.send([rec(1)]), ErrorCode.StreamUnavailable);
    }, 2000);
  });

  describe('back-pressure', () => {
    it('rejects a send that would overflow the buffer with OVERLOADED and sends nothing', async () => {
      const kinesis = new FakeKinesis();
      const producer = new BatchingProducer(
        kinesis.put,
        options({ lingerMs: 0, maxBufferedRecords: 3 }),
      );

      const error = await expectAppError(producer.send(recs(0, 4)), ErrorCode.Overloaded);

      expect(error.retryAfterSeconds).toBeGreaterThanOrEqual(1);
      expect(kinesis.calls).toHaveLength(0);
      expect(producer.bufferedRecords).toBe(0);
    });

    it('counts records still in flight against the bound', async () => {
      const gate = deferred<PutRecordsResultEntry[]>();
      const kinesis = new FakeKinesis(() => gate.promise);
      const producer = new BatchingProducer(
        kinesis.put,
        options({ lingerMs: 0, maxBufferedRecords: 3 }),
      );

      const first = producer.send(recs(0, 2));
      expect(producer.bufferedRecords).toBe(2);
      await expectAppError(producer.send(recs(2, 2)), ErrorCode.Overloaded);
      expect(kinesis.calls.flat().map((e) => e.PartitionKey)).toEqual(['k0', 'k1']);

      gate.resolve([success(), success()]);
      await first;
      expect(producer.bufferedRecords).toBe(0);
      await producer.send(recs(2, 2)); // room again
    });
  });

  describe('close()', () => {
    it('waits for records in flight, then further sends reject with SHUTTING_DOWN', async () => {
      const gate = deferred<PutRecordsResultEntry[]>();
      const kinesis = new FakeKinesis(() => gate.promise);
      const producer = new BatchingProducer(kinesis.put, options({ lingerMs: 0 }));

      const send = track(producer.send(recs(0, 2)));
      expect(kinesis.calls).toHaveLength(1);
      const closed = track(producer.close());
      await drainMicrotasks();
      expect(closed.settled()).toBe(false);
      expect(send.settled()).toBe(false);

      gate.resolve([success(), success()]);
      await closed.promise;
      expect(send.settled()).toBe(true);
      await expect(send.promise).resolves.toBeUndefined();

      await expectAppError(producer.send([rec(9)]), ErrorCode.ShuttingDown);
      expect(kinesis.calls).toHaveLength(1);
    });

    it('flushes lingering records at once instead of waiting for the linger', async () => {
      const kinesis = new FakeKinesis();
      const producer = new BatchingProducer(kinesis.put, options({ lingerMs: 60_000 }));

      const send = producer.send(recs(0, 3));
      expect(kinesis.calls).toHaveLength(0);
      await producer.close();

      await send;
      expect(kinesis.keys(0)).toEqual(['k0', 'k1', 'k2']);
    });

    it('waits for records being retried', async () => {
      const kinesis = new FakeKinesis(async (entries, call) =>
        call === 0 ? entries.map(() => failure()) : entries.map(success),
      );
      const producer = new BatchingProducer(kinesis.put, options({ lingerMs: 0 }));
      const send = producer.send(recs(0, 2));
      await kinesis.waitForCalls(1);
      await producer.close();
      await send;
      expect(kinesis.calls).toHaveLength(2);
      expect(producer.bufferedRecords).toBe(0);
    });

    it('resolves at once when nothing is buffered and still refuses new sends', async () => {
      const kinesis = new FakeKinesis();
      const producer = new BatchingProducer(kinesis.put, options());
      await producer.close();
      await expectAppError(producer.send([rec(1)]), ErrorCode.ShuttingDown);
      expect(kinesis.calls).toHaveLength(0);
    });
  });
});
