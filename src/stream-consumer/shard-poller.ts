import { ShardAggregation, UnrestorableStateError } from '../aggregation/shard-aggregation';
import { sleep } from '../common/backoff';
import { Measurement } from '../domain/measurement';
import { DeadLetter } from './dead-letter.repository';
import {
  Checkpoint,
  hashRangeOf,
  Lease,
  LeaseLostError,
  positionOf,
  SHARD_END,
} from './lease.repository';
import { StreamRecord } from './record-decoder';
import { ShardCommitter } from './shard-committer';
import { describeError, ShardRetrier, Stall, StoppedError } from './shard-retrier';
import { decodeUserRecord, routedByCity, UserRecord, userRecords } from './user-records';

/** The Kinesis calls a poller makes. */
export interface ShardReader {
  /**
   * An iterator after `position`, at it when it falls inside a KPL aggregate, or at TRIM_HORIZON
   * without one.
   */
  iterator(shardId: string, position: Checkpoint | undefined): Promise<string>;
  read(
    iterator: string,
  ): Promise<{ records: StreamRecord[]; next?: string; millisBehindLatest?: number }>;
}

/** Where a batch goes; both throw when the write did not happen. */
export interface BatchSink {
  /** Stores the measurements; their cities' latest items wait for `writer`'s (a shard's) flush. */
  store(measurements: Measurement[], writer?: string): Promise<void>;
  deadLetter(letters: DeadLetter[]): Promise<void>;
  /** Counts the user records taken out of KPL aggregates. */
  deaggregated(count: number): void;
}

export interface PollerTiming {
  /** Minimum time between two GetRecords calls on one shard (5 calls/s on AWS). */
  minPollIntervalMs: number;
  /**
   * Once the shard is idle (empty for `idleAfterMs`), it is read once per this interval, on a beat
   * that every idle shard of the process shares: the clock's multiples of it, shifted by
   * `idlePhaseMs`. Their reads go out together and the process wakes once for them, not once per
   * shard. A wake (records just put on the shard by this process) ends the wait early.
   */
  idleDelayMs: number;
  idleAfterMs: number;
  /**
   * Where the idle beat falls in each interval: chosen at random per process, so that the
   * instances of a deployment do not all read their idle shards at the same moment.
   */
  idlePhaseMs: number;
  /** User records processed between two chances to commit (KPL aggregates hold thousands). */
  recordsPerStep: number;
  /** Tries of the last commit when the poller is stopped (the shutdown has a deadline)… */
  stopCommitAttempts: number;
  /** …and how long they may take in all, so a hung table cannot hold the shutdown. */
  stopCommitBudgetMs: number;
}

export const DEFAULT_TIMING: PollerTiming = {
  minPollIntervalMs: 200,
  idleDelayMs: 1000,
  idleAfterMs: 10_000,
  idlePhaseMs: 0,
  recordsPerStep: 1000,
  stopCommitAttempts: 3,
  stopCommitBudgetMs: 10_000,
};

export type PollerState =
  'starting' | 'polling' | 'stalled' | 'ended' | 'lost' | 'failed' | 'stopped';

export interface PollerStatus {
  shardId: string;
  state: PollerState;
  checkpoint?: string;
  millisBehindLatest?: number;
  lastReadAt?: string;
  /** While a dependency keeps failing: since when, on what, and the last error. */
  stall?: Stall;
  /** Why the poller failed (state `failed`). */
  failure?: string;
}

// DynamoDB refuses the request for something in the items themselves: no retry can fix it, so
// the batch is split until the record at fault is found and dead-lettered.
const PER_RECORD = new Set([
  'ValidationException',
  'SerializationException',
  'ItemCollectionSizeLimitExceededException',
]);
const isPerRecord = (error: unknown) => error instanceof Error && PER_RECORD.has(error.name);
const isExpiredIterator = (error: unknown) =>
  error instanceof Error && error.name === 'ExpiredIteratorException';

type Item = { record: StreamRecord; measurement: Measurement };

/**
 * Reads one shard: decode → validate → store or dead-letter → aggregate → commit, in that order.
 * A checkpoint is written only after every earlier record of the shard was stored or
 * dead-lettered. A record goes to the DLQ only for something in the record itself; an outage is
 * retried for as long as it lasts while the shard reports itself stalled.
 */
export class ShardPoller {
  private state: PollerState = 'starting';
  private millisBehindLatest?: number;
  private lastReadAt?: Date;
  private failure?: string;
  private readonly abort = new AbortController();
  private readonly retrier: ShardRetrier;
  /** Stored or dead-lettered, in the window state, not yet checkpointed. */
  private processed?: Checkpoint;
  /** The commit in flight (it never rejects), and how it failed. */
  private committing?: Promise<void>;
  private commitFailure?: { error: unknown };
  /** Since when every read came back empty (unset after a record or a wake). */
  private emptySince?: number;
  /** Ends the idle pause in progress, if any. */
  private endIdlePause?: () => void;

  constructor(
    private readonly lease: Lease,
    private readonly reader: ShardReader,
    private readonly sink: BatchSink,
    private readonly aggregation: ShardAggregation,
    private readonly committer: ShardCommitter,
    retrier: (signal: AbortSignal) => ShardRetrier,
    private readonly log: { warn(message: string): void; error(message: string): void },
    private readonly timing: PollerTiming = DEFAULT_TIMING,
  ) {
    this.retrier = retrier(this.abort.signal);
  }

  get shardId(): string {
    return this.lease.leaseKey;
  }

  status(): PollerStatus {
    const stall = this.retrier.stall;
    return {
      shardId: this.shardId,
      state: stall && this.state === 'polling' ? 'stalled' : this.state,
      checkpoint: this.lease.checkpoint,
      millisBehindLatest: this.millisBehindLatest,
      lastReadAt: this.lastReadAt?.toISOString(),
      ...(stall ? { stall } : {}),
      ...(this.failure ? { failure: this.failure } : {}),
    };
  }

  /**
   * Records were just put on the shard: an idle poller reads at once (at its busy pace after the
   * last read) and keeps the busy pace until the shard is idle again.
   */
  wake(): void {
    this.emptySince = undefined;
    this.endIdlePause?.();
  }

  /** Asks the loop to stop after the step in flight; `run()` then resolves. */
  stop(): void {
    this.abort.abort();
  }

  /** Runs until the shard ends, the lease is lost, the state cannot be restored, or `stop()`. */
  async run(): Promise<void> {
    if (this.lease.checkpoint === SHARD_END) {
      this.state = 'ended';
      return;
    }
    try {
      await this.retry('window-state restore', () => this.aggregation.restore());
      let iterator: string | undefined = await this.retry('GetShardIterator', () =>
        this.reader.iterator(this.shardId, positionOf(this.lease)),
      );
      this.state = 'polling';
      while (iterator !== undefined && !this.stopped) {
        const started = Date.now();
        // The read overlaps the commit in flight; what it returns is processed once that
        // commit is done, so the window state it checkpoints is the one it sealed.
        const page = await this.retry('GetRecords', async () => {
          try {
            return await this.reader.read(iterator!);
          } catch (error) {
            // Resume after what was processed, checkpointed or not: the window state holds it.
            if (isExpiredIterator(error))
              iterator = await this.reader.iterator(this.shardId, this.position);
            throw error;
          }
        });
        this.lastReadAt = new Date();
        this.millisBehindLatest = page.millisBehindLatest;
        await this.committed();
        if (page.records.length > 0 && !(await this.process(page.records))) break;
        iterator = page.next;
        if (iterator === undefined) {
          await this.committer.commit(
            { sequenceNumber: SHARD_END },
            { caughtUp: false, force: true },
            this.retry,
          );
          this.state = 'ended';
          return;
        }
        // An empty read checkpoints at once; a busy shard every few seconds (see ShardCommitter).
        const idle = page.records.length === 0;
        this.startCommit({ caughtUp: idle || page.millisBehindLatest === 0, checkpointNow: idle });
        await this.pause(started, page.records.length === 0);
      }
      await this.committed();
    } catch (error) {
      if (error instanceof LeaseLostError) {
        this.state = 'lost';
        this.log.warn(`${error.message}: writing nothing more`);
      } else if (error instanceof UnrestorableStateError) {
        this.state = 'failed';
        this.failure = error.message;
        this.log.error(`${this.shardId}: ${error.message}; releasing the shard`);
      } else if (!(error instanceof StoppedError)) {
        throw error;
      }
    } finally {
      // Stopped during a read: the commit in flight lands first (fenced, like any other).
      await this.committing;
      if (this.state === 'polling' || this.state === 'starting') this.state = 'stopped';
      await this.commitOnStop();
    }
  }

  /**
   * Paces reads to the per-shard call rate from the start of the last one; once the shard has
   * been empty for `idleAfterMs`, to the next idle beat, which a wake ends early.
   */
  private async pause(started: number, empty: boolean): Promise<void> {
    const { minPollIntervalMs: busy, idleDelayMs, idleAfterMs, idlePhaseMs } = this.timing;
    const now = Date.now();
    this.emptySince = empty ? (this.emptySince ?? now) : undefined;
    const idle = this.emptySince !== undefined && now - this.emptySince >= idleAfterMs;
    if (!idle) return sleep(busy - (now - started), this.abort.signal);
    const sinceBeat = (((now - idlePhaseMs) % idleDelayMs) + idleDelayMs) % idleDelayMs;
    const woken = new AbortController();
    this.endIdlePause = () => woken.abort();
    try {
      await sleep(
        Math.max(busy - (now - started), idleDelayMs - sinceBeat),
        AbortSignal.any([this.abort.signal, woken.signal]),
      );
    } finally {
      this.endIdlePause = undefined;
    }
    if (woken.signal.aborted) await sleep(busy - (Date.now() - started), this.abort.signal);
  }

  /**
   * Commits what was processed in the background, so the next read overlaps it. Nothing touches
   * the window state until `committed()` has waited for it.
   */
  private startCommit(options: { caughtUp: boolean; checkpointNow: boolean }): void {
    this.committing = this.committer
      .commit(this.processed, { ...options, force: false }, this.retry)
      .then(
        () => undefined,
        (error: unknown) => void (this.commitFailure = { error }),
      );
  }

  /** Waits for the commit in flight, if any, and throws what it threw. */
  private async committed(): Promise<void> {
    await this.committing;
    this.committing = undefined;
    const failure = this.commitFailure;
    this.commitFailure = undefined;
    if (failure) throw failure.error;
  }

  private get position(): Checkpoint | undefined {
    return this.processed ?? positionOf(this.lease);
  }

  private get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  private readonly retry = <T>(operation: string, action: () => Promise<T>) =>
    this.retrier.run(operation, action);

  /**
   * A stopped poller still commits what it processed, with a few tries (the shutdown has a
   * deadline). What it cannot write stays in the stream and the previous state for the next owner.
   */
  private async commitOnStop(): Promise<void> {
    if (this.state !== 'stopped' || this.processed === undefined) return;
    let timer: NodeJS.Timeout | undefined;
    const budget = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer within ${this.timing.stopCommitBudgetMs} ms`)),
        this.timing.stopCommitBudgetMs,
      );
    });
    try {
      // A commit still in flight when the budget runs out is fenced like any other: it lands
      // only while the lease is still ours, that is before it is released.
      await Promise.race([
        budget,
        this.committer.commit(this.processed, { caughtUp: false, force: true }, (op, action) =>
          this.retrier.run(op, action, { attempts: this.timing.stopCommitAttempts }),
        ),
      ]);
    } catch (error) {
      if (error instanceof LeaseLostError) return;
      this.log.warn(
        `${this.shardId}: last commit failed, the next owner resumes from the previous checkpoint: ${describeError(error)}`,
      );
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Processes a page's user records step by step, with a chance to commit between steps (so a
   * checkpoint can fall inside a KPL aggregate) and to stop. False when stopped before the end.
   */
  private async process(records: StreamRecord[]): Promise<boolean> {
    const units = userRecords(records, this.position);
    for (let i = 0; i < units.length; i += this.timing.recordsPerStep) {
      if (i > 0) {
        await this.committer.commit(
          this.processed,
          { caughtUp: false, force: false, checkpointNow: true },
          this.retry,
        );
        if (this.stopped) return false;
      }
      await this.processStep(units.slice(i, i + this.timing.recordsPerStep));
    }
    return true;
  }

  /** Stores the valid records and dead-letters the others, then adds them to the windows. */
  private async processStep(units: UserRecord[]): Promise<void> {
    const valid: Item[] = [];
    const letters: DeadLetter[] = [];
    const letter = (record: StreamRecord, reason: DeadLetter['reason'], message: string) =>
      letters.push({ record, shardId: this.shardId, reason, message });
    for (const unit of units) {
      const decoded = decodeUserRecord(unit);
      if (decoded.ok) valid.push({ record: unit.record, measurement: decoded.measurement });
      else letter(unit.record, decoded.reason, decoded.message);
    }
    const refused = new Set<StreamRecord>();
    for (const failed of await this.store(valid)) {
      refused.add(failed.record);
      letter(failed.record, 'processing_error', `speed-layer write refused: ${failed.error}`);
    }
    if (letters.length > 0)
      await this.retry('dead-letter write', () => this.sink.deadLetter(letters));
    // Windows are per shard: a city is aggregated only on the shard its city_id maps to.
    const stored = valid.filter((v) => !refused.has(v.record));
    const range = hashRangeOf(this.lease);
    const keyed = stored.filter((v) => routedByCity(v.record, v.measurement.city_id, range));
    if (keyed.length < stored.length) {
      this.log.warn(
        `${this.shardId}: ${stored.length - keyed.length} record(s) not routed by their city_id (partition key, explicit hash key or shard) stored but not aggregated`,
      );
    }
    this.aggregation.add(
      keyed.map((v) => v.measurement),
      Date.now(),
    );
    this.processed = units[units.length - 1].reached;
    this.sink.deaggregated(units.filter((u) => u.record.subSequenceNumber !== undefined).length);
  }

  /**
   * Stores `items`, retrying outages for as long as they last. When DynamoDB refuses the request
   * for something in the items, halves are tried until the records at fault are found; those
   * are returned, to be dead-lettered.
   */
  private async store(items: Item[]): Promise<{ record: StreamRecord; error: string }[]> {
    if (items.length === 0) return [];
    try {
      await this.retrier.run(
        'speed-layer write',
        () => this.sink.store(items.map((i) => i.measurement)),
        { giveUp: isPerRecord },
      );
      return [];
    } catch (error) {
      if (!isPerRecord(error)) throw error;
      if (items.length === 1) return [{ record: items[0].record, error: describeError(error) }];
      const half = Math.ceil(items.length / 2);
      return [
        ...(await this.store(items.slice(0, half))),
        ...(await this.store(items.slice(half))),
      ];
    }
  }
}
