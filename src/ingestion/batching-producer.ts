import type { PutRecordsRequestEntry, PutRecordsResultEntry } from '@aws-sdk/client-kinesis';
import { AppError, ErrorCode } from '../common/app-error';
import { backoffDelay } from '../common/backoff';

export const MAX_RECORDS_PER_CALL = 500;
export const MAX_BYTES_PER_CALL = 5 * 1024 * 1024;

/** One PutRecords call: returns one result per entry, in order (a SequenceNumber or an ErrorCode). */
export type PutRecordsFn = (entries: PutRecordsRequestEntry[]) => Promise<PutRecordsResultEntry[]>;

export interface ProducerOptions {
  lingerMs: number;
  deadlineMs: number;
  maxBufferedRecords: number;
  maxConcurrentCalls?: number;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  random?: () => number;
  onRetry?: (entries: number, reason: string) => void;
}

interface Group {
  remaining: number;
  deadline: number;
  settled: boolean;
  resolve: () => void;
  reject: (error: Error) => void;
  timer?: NodeJS.Timeout;
}

interface Entry {
  request: PutRecordsRequestEntry;
  size: number;
  attempts: number;
  group: Group;
}

/**
 * Batches concurrent `send` calls into PutRecords calls (≤500 records, ≤5 MB, after at most
 * `lingerMs`) and resolves a send only once Kinesis acknowledged every one of its records.
 * Failed entries alone are retried, with exponential back-off and full jitter, until the send's
 * deadline; then the send rejects with STREAM_UNAVAILABLE. The buffer is bounded (OVERLOADED).
 */
export class BatchingProducer {
  private queue: Entry[] = [];
  private queuedBytes = 0;
  private buffered = 0;
  private inFlight = 0;
  private lingerTimer?: NodeJS.Timeout;
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  private closing = false;
  private drained?: () => void;

  constructor(
    private readonly putRecords: PutRecordsFn,
    private readonly options: ProducerOptions,
  ) {}

  get bufferedRecords(): number {
    return this.buffered;
  }

  send(records: { data: Uint8Array; partitionKey: string }[]): Promise<void> {
    if (this.closing) {
      return Promise.reject(
        new AppError(ErrorCode.ShuttingDown, 'the service is shutting down', [], 1),
      );
    }
    if (this.buffered + records.length > this.options.maxBufferedRecords) {
      return Promise.reject(
        new AppError(ErrorCode.Overloaded, 'the ingestion buffer is full, retry shortly', [], 1),
      );
    }
    if (records.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const group: Group = {
        remaining: records.length,
        deadline: Date.now() + this.options.deadlineMs,
        settled: false,
        resolve,
        reject,
      };
      // Rejects at the deadline even when a PutRecords call hangs; late acknowledgements are ignored.
      group.timer = setTimeout(() => this.giveUp(group), this.options.deadlineMs).unref();
      this.buffered += records.length;
      for (const record of records) {
        const size = record.data.byteLength + Buffer.byteLength(record.partitionKey);
        this.enqueue({
          request: { Data: record.data, PartitionKey: record.partitionKey },
          size,
          attempts: 0,
          group,
        });
      }
      this.schedule();
    });
  }

  /** Stops taking records and resolves once every buffered record was acknowledged or given up. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.buffered === 0) return;
    const drained = new Promise<void>((resolve) => (this.drained = resolve));
    this.flush();
    await drained;
  }

  private enqueue(entry: Entry, front = false): void {
    if (front) this.queue.unshift(entry);
    else this.queue.push(entry);
    this.queuedBytes += entry.size;
  }

  private schedule(): void {
    const full =
      this.queue.length >= MAX_RECORDS_PER_CALL || this.queuedBytes >= MAX_BYTES_PER_CALL;
    if (full || this.options.lingerMs === 0 || this.closing) {
      this.flush();
    } else if (!this.lingerTimer) {
      this.lingerTimer = setTimeout(() => {
        this.lingerTimer = undefined;
        this.flush();
      }, this.options.lingerMs);
    }
  }

  private flush(): void {
    if (this.lingerTimer) {
      clearTimeout(this.lingerTimer);
      this.lingerTimer = undefined;
    }
    const maxCalls = this.options.maxConcurrentCalls ?? 8;
    while (this.queue.length > 0 && this.inFlight < maxCalls) {
      const batch = this.takeBatch();
      if (batch.length > 0) void this.put(batch);
    }
  }

  private takeBatch(): Entry[] {
    const batch: Entry[] = [];
    let bytes = 0;
    while (this.queue.length > 0 && batch.length < MAX_RECORDS_PER_CALL) {
      const next = this.queue[0];
      if (batch.length > 0 && bytes + next.size > MAX_BYTES_PER_CALL) break;
      this.queue.shift();
      this.queuedBytes -= next.size;
      if (next.group.settled) {
        this.release(1);
        continue;
      }
      bytes += next.size;
      batch.push(next);
    }
    return batch;
  }

  private async put(batch: Entry[]): Promise<void> {
    this.inFlight += 1;
    try {
      const results = await this.putRecords(batch.map((e) => e.request));
      const failed: Entry[] = [];
      let reason = '';
      batch.forEach((entry, i) => {
        const result = results[i];
        if (result?.SequenceNumber) this.acknowledge(entry);
        else {
          failed.push(entry);
          reason = result?.ErrorCode ?? 'missing result';
        }
      });
      if (failed.length > 0) this.retry(failed, reason);
    } catch (error) {
      this.retry(batch, error instanceof Error ? error.name : 'error');
    } finally {
      this.inFlight -= 1;
      if (this.queue.length > 0) this.flush();
    }
  }

  private acknowledge(entry: Entry): void {
    this.release(1);
    const group = entry.group;
    if (group.settled) return;
    group.remaining -= 1;
    if (group.remaining === 0) {
      group.settled = true;
      clearTimeout(group.timer);
      group.resolve();
    }
  }

  /** The failed entries of one call go back together, after one jittered back-off. */
  private retry(entries: Entry[], reason: string): void {
    this.options.onRetry?.(entries.length, reason);
    const live = entries.filter((entry) => {
      if (entry.group.settled) this.release(1);
      return !entry.group.settled;
    });
    if (live.length === 0) return;
    for (const entry of live) entry.attempts += 1;
    const attempts = Math.max(...live.map((e) => e.attempts));
    const delay = backoffDelay(
      attempts,
      { baseMs: this.options.backoffBaseMs ?? 25, capMs: this.options.backoffCapMs ?? 2000 },
      this.options.random,
    );
    const due = live.filter((entry) => {
      if (Date.now() + delay <= entry.group.deadline) return true;
      this.giveUp(entry.group);
      this.release(1);
      return false;
    });
    if (due.length === 0) return;
    const timer = setTimeout(() => {
      this.retryTimers.delete(timer);
      for (const entry of due.reverse()) this.enqueue(entry, true);
      this.flush();
    }, delay);
    this.retryTimers.add(timer);
  }

  private giveUp(group: Group): void {
    if (group.settled) return;
    group.settled = true;
    clearTimeout(group.timer);
    group.reject(
      new AppError(
        ErrorCode.StreamUnavailable,
        'the stream did not acknowledge every record before the deadline; resending the same body is safe',
        [],
        1,
      ),
    );
  }

  private release(count: number): void {
    this.buffered -= count;
    if (this.buffered === 0 && this.drained) {
      this.drained();
      this.drained = undefined;
    }
  }
}
