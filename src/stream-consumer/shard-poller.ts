import type { Aggregate } from '../aggregation/window-aggregator';
import { Measurement } from '../domain/measurement';
import { DeadLetter } from './dead-letter.repository';
import { Lease, LeaseLostError, SHARD_END } from './lease.repository';
import { Decoded, decodeRecord, StreamRecord } from './record-decoder';

/** The Kinesis calls a poller makes. */
export interface ShardReader {
  /** An iterator after `checkpoint`, or at TRIM_HORIZON without one. */
  iterator(shardId: string, checkpoint: string | undefined): Promise<string>;
  read(
    iterator: string,
  ): Promise<{ records: StreamRecord[]; next?: string; millisBehindLatest?: number }>;
}

/** Where a batch goes; both throw when the write did not happen. */
export interface BatchSink {
  store(measurements: Measurement[]): Promise<void>;
  deadLetter(letters: DeadLetter[]): Promise<void>;
  /** Writes what `store` deferred (the per-city latest items); called before every checkpoint. */
  flush?(): Promise<void>;
}

export interface Checkpointer {
  /** With `state`, the window state is saved atomically with the checkpoint. */
  checkpoint(lease: Lease, sequenceNumber: string, state?: Buffer[]): Promise<void>;
}

/** The window aggregation of one shard, as the poller drives it (see WindowAggregator). */
export interface ShardAggregation {
  /** At most this often, partial aggregates are written and the state is checkpointed. */
  flushMs: number;
  restore(): Promise<void>;
  add(measurements: Measurement[], now: number): void;
  collect(now: number, caughtUp: boolean, flushPartials: boolean): Aggregate[];
  write(aggregates: Aggregate[]): Promise<void>;
  snapshot(): Buffer[];
}

export interface PollerTiming {
  /** Attempts at storing a batch before it is tried record by record and failures dead-lettered. */
  maxAttempts: number;
  /** Minimum time between two GetRecords calls on one shard (5 calls/s on AWS). */
  minPollIntervalMs: number;
  /** Time from the start of an empty read to the next one (at most 250 ms). */
  idleDelayMs: number;
  retryBaseMs: number;
  retryCapMs: number;
}

export const DEFAULT_TIMING: PollerTiming = {
  maxAttempts: 10,
  minPollIntervalMs: 200,
  idleDelayMs: 200,
  retryBaseMs: 100,
  retryCapMs: 5000,
};

export type PollerState = 'starting' | 'polling' | 'retrying' | 'ended' | 'lost' | 'stopped';

export interface PollerStatus {
  shardId: string;
  state: PollerState;
  checkpoint?: string;
  millisBehindLatest?: number;
  lastReadAt?: string;
}

export interface PollerLog {
  warn(message: string): void;
  error(message: string): void;
}

// Errors that no retry can fix: the request itself is wrong for this record.
const PERMANENT = new Set([
  'ValidationException',
  'SerializationException',
  'ItemCollectionSizeLimitExceededException',
]);
const isRetryable = (error: unknown) => !(error instanceof Error && PERMANENT.has(error.name));
const describe = (error: unknown) =>
  error instanceof Error ? `${error.name}: ${error.message}`.slice(0, 500) : String(error);

const isExpiredIterator = (error: unknown) =>
  error instanceof Error && error.name === 'ExpiredIteratorException';

/**
 * Reads one shard: decode → validate → store or dead-letter → checkpoint, in that order.
 * A checkpoint is written only after every earlier record of the shard was stored or dead-lettered;
 * a failed write is retried (never skipped) until it succeeds or the poller is stopped.
 */
export class ShardPoller {
  private state: PollerState = 'starting';
  private millisBehindLatest?: number;
  private lastReadAt?: Date;
  private readonly abort = new AbortController();
  /** Processed (stored or dead-lettered) but not yet checkpointed, with aggregation on. */
  private pending?: string;
  private lastCommitAt = Date.now();

  constructor(
    private readonly lease: Lease,
    private readonly reader: ShardReader,
    private readonly sink: BatchSink,
    private readonly checkpointer: Checkpointer,
    private readonly log: PollerLog,
    private readonly timing: PollerTiming = DEFAULT_TIMING,
    private readonly aggregation?: ShardAggregation,
  ) {}

  get shardId(): string {
    return this.lease.leaseKey;
  }

  status(): PollerStatus {
    return {
      shardId: this.shardId,
      state: this.state,
      checkpoint: this.lease.checkpoint,
      millisBehindLatest: this.millisBehindLatest,
      lastReadAt: this.lastReadAt?.toISOString(),
    };
  }

  /** Asks the loop to stop after the batch in flight; `run()` then resolves. */
  stop(): void {
    this.abort.abort();
  }

  /** Runs until the shard ends, the lease is lost or `stop()` is called. */
  async run(): Promise<void> {
    if (this.lease.checkpoint === SHARD_END) {
      this.state = 'ended';
      return;
    }
    try {
      if (this.aggregation)
        await this.retrying('window-state restore', () => this.aggregation!.restore());
      let iterator: string | undefined = await this.retrying('GetShardIterator', () =>
        this.reader.iterator(this.shardId, this.lease.checkpoint),
      );
      let readFailures = 0;
      while (iterator !== undefined && !this.stopped) {
        const started = Date.now();
        let page: Awaited<ReturnType<ShardReader['read']>>;
        try {
          page = await this.reader.read(iterator);
        } catch (error) {
          if (isExpiredIterator(error)) {
            // After what was processed, checkpointed or not: the window state already holds it.
            iterator = await this.retrying('GetShardIterator', () =>
              this.reader.iterator(this.shardId, this.pending ?? this.lease.checkpoint),
            );
          } else {
            readFailures += 1;
            await this.backoffAfter('GetRecords', error, readFailures);
          }
          continue;
        }
        readFailures = 0;
        this.state = 'polling';
        this.lastReadAt = new Date();
        this.millisBehindLatest = page.millisBehindLatest;
        if (page.records.length > 0) {
          const done = await this.processBatch(page.records);
          if (!done) return;
        }
        const caughtUp = page.records.length === 0 || page.millisBehindLatest === 0;
        if (this.aggregation) await this.commit(caughtUp, false);
        iterator = page.next;
        if (iterator === undefined) {
          if (this.aggregation) await this.commit(false, true);
          const state = this.aggregation?.snapshot();
          await this.retrying('checkpoint', () =>
            this.checkpointer.checkpoint(this.lease, SHARD_END, state),
          );
          this.state = 'ended';
          return;
        }
        // Paced to the per-shard call rate; an empty read waits the idle delay from its start.
        const pace =
          page.records.length > 0 ? this.timing.minPollIntervalMs : this.timing.idleDelayMs;
        const wait = pace - (Date.now() - started);
        if (wait > 0) await this.sleep(wait);
      }
    } catch (error) {
      if (error instanceof LeaseLostError) {
        this.state = 'lost';
        this.log.warn(error.message);
        return;
      }
      if (!(error instanceof StoppedError)) throw error;
    } finally {
      if (this.state !== 'ended' && this.state !== 'lost') this.state = 'stopped';
      await this.commitOnStop();
    }
  }

  /**
   * With aggregation: writes the aggregates that are due and, when the state changed or a flush
   * is due, checkpoints the processed position together with the window state.
   */
  private async commit(caughtUp: boolean, force: boolean): Promise<void> {
    const aggregation = this.aggregation!;
    const now = Date.now();
    const flush = force || now - this.lastCommitAt >= aggregation.flushMs;
    const aggregates = aggregation.collect(now, caughtUp, flush);
    if (aggregates.length > 0) {
      await this.retrying('aggregate write', () => aggregation.write(aggregates));
    }
    if (aggregates.length === 0 && !(flush && this.pending)) return;
    const sequenceNumber = this.pending ?? this.lease.checkpoint;
    if (sequenceNumber === undefined) return;
    if (this.sink.flush) await this.retrying('latest write', () => this.sink.flush!());
    const state = aggregation.snapshot();
    await this.retrying('checkpoint', () =>
      this.checkpointer.checkpoint(this.lease, sequenceNumber, state),
    );
    this.pending = undefined;
    this.lastCommitAt = now;
  }

  /**
   * A stopped poller still checkpoints what it processed, with a few attempts. Aggregates it
   * cannot write stay in the state it checkpoints, for the next owner to write.
   */
  private async commitOnStop(): Promise<void> {
    const pending = this.pending;
    if (!this.aggregation || pending === undefined || this.state !== 'stopped') return;
    for (let attempt = 1; attempt <= 3; attempt++) {
      try {
        const aggregates = this.aggregation.collect(Date.now(), false, true);
        if (aggregates.length > 0) {
          await this.aggregation.write(aggregates).catch((error: unknown) => {
            this.log.warn(
              `${this.shardId}: aggregates left in the window state for later: ${describe(error)}`,
            );
          });
        }
        await this.sink.flush?.();
        await this.checkpointer.checkpoint(this.lease, pending, this.aggregation.snapshot());
        this.pending = undefined;
        return;
      } catch (error) {
        if (error instanceof LeaseLostError) return;
        this.log.warn(
          `${this.shardId}: final checkpoint failed (attempt ${attempt}): ${describe(error)}`,
        );
      }
    }
  }

  /**
   * Stores the valid records, dead-letters the others, then checkpoints the last sequence number.
   * A store that keeps failing is retried `maxAttempts` times, then record by record; a record
   * that still fails is dead-lettered as processing_error. Dead-letter writes and the checkpoint
   * are retried until they succeed. Returns false when stopped before the checkpoint.
   */
  async processBatch(records: StreamRecord[]): Promise<boolean> {
    const valid: { record: StreamRecord; measurement: Measurement }[] = [];
    const letters: DeadLetter[] = [];
    const letter = (record: StreamRecord, reason: DeadLetter['reason'], message: string) =>
      letters.push({ record, shardId: this.shardId, reason, message });
    for (const record of records) {
      let decoded: Decoded;
      try {
        decoded = decodeRecord(record);
      } catch (error) {
        decoded = {
          ok: false,
          reason: 'processing_error',
          message: `decoding failed: ${describe(error)}`,
        };
      }
      if (decoded.ok) valid.push({ record, measurement: decoded.measurement });
      else letter(record, decoded.reason, decoded.message);
    }
    try {
      for (const failed of await this.storeBounded(valid)) {
        letter(failed.record, 'processing_error', `speed-layer write failed: ${failed.error}`);
      }
      if (letters.length > 0) {
        await this.retrying('dead-letter write', () => this.sink.deadLetter(letters));
      }
      const last = records[records.length - 1].sequenceNumber;
      if (this.aggregation) {
        const stored = new Set(valid.map((v) => v.record));
        for (const l of letters) stored.delete(l.record);
        // Windows are per shard: a city is aggregated only on the shard its city_id maps to.
        const aggregated = valid.filter((v) => stored.has(v.record));
        const keyed = aggregated.filter((v) => v.record.partitionKey === v.measurement.city_id);
        if (keyed.length < aggregated.length) {
          this.log.warn(
            `${this.shardId}: ${aggregated.length - keyed.length} record(s) with a partition key other than their city_id stored but not aggregated`,
          );
        }
        this.aggregation.add(
          keyed.map((v) => v.measurement),
          Date.now(),
        );
        this.pending = last;
        return true;
      }
      if (this.sink.flush) await this.retrying('latest write', () => this.sink.flush!());
      await this.retrying('checkpoint', () => this.checkpointer.checkpoint(this.lease, last));
      return true;
    } catch (error) {
      if (error instanceof StoppedError) return false;
      throw error;
    }
  }

  /** Returns the records that could not be stored within the bounded attempts. */
  private async storeBounded(
    items: { record: StreamRecord; measurement: Measurement }[],
  ): Promise<{ record: StreamRecord; error: string }[]> {
    if (items.length === 0) return [];
    let lastError: unknown;
    for (let attempt = 1; attempt <= this.timing.maxAttempts; attempt++) {
      if (this.stopped) throw new StoppedError();
      try {
        await this.sink.store(items.map((i) => i.measurement));
        if (this.state === 'retrying') this.state = 'polling';
        return [];
      } catch (error) {
        lastError = error;
        if (!isRetryable(error)) break;
        if (attempt < this.timing.maxAttempts)
          await this.backoffAfter('speed-layer write', error, attempt);
      }
    }
    if (items.length === 1) return [{ record: items[0].record, error: describe(lastError) }];
    // Find the records that fail on their own; the others are stored.
    const failed: { record: StreamRecord; error: string }[] = [];
    for (const item of items) {
      if (this.stopped) throw new StoppedError();
      try {
        await this.sink.store([item.measurement]);
      } catch (error) {
        failed.push({ record: item.record, error: describe(error) });
      }
    }
    return failed;
  }

  private get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  /** Retries `action` with capped exponential back-off and jitter until it succeeds or we stop. */
  private async retrying<T>(what: string, action: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      if (this.stopped) throw new StoppedError();
      try {
        const result = await action();
        if (this.state === 'retrying') this.state = 'polling';
        return result;
      } catch (error) {
        if (error instanceof LeaseLostError) throw error;
        await this.backoffAfter(what, error, attempt);
      }
    }
  }

  private async backoffAfter(what: string, error: unknown, attempt: number): Promise<void> {
    this.state = 'retrying';
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    this.log.warn(`${this.shardId}: ${what} failed (attempt ${attempt}), retrying: ${message}`);
    const cap = Math.min(this.timing.retryCapMs, this.timing.retryBaseMs * 2 ** (attempt - 1));
    await this.sleep(cap / 2 + (Math.random() * cap) / 2);
  }

  private sleep(ms: number): Promise<void> {
    const signal = this.abort.signal;
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
    });
  }
}

class StoppedError extends Error {
  constructor() {
    super('stopped');
  }
}
