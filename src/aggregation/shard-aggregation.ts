import { Logger } from '@nestjs/common';
import { gunzipSync, gzipSync } from 'node:zlib';
import { Measurement } from '../domain/measurement';
import { AggregationSettings } from '../domain/windows';
import { MetricsService } from '../metrics/metrics.service';
import { HashRange, inRange, partitionHash } from './hash-range';
import { Aggregate, Refusal, WindowAggregator, windowKey } from './window-aggregator';

/** What one TransactWriteItems call (4 MB) can carry next to the lease update. */
export const MAX_STATE_BYTES = 3.8 * 1024 * 1024;

/**
 * The window results to write and the state to checkpoint with them, as one commit: a full state
 * that replaces the saved one, or (`appendState`) the changes since, added after it.
 */
export interface CommitPlan {
  aggregates: Aggregate[];
  state: Buffer[];
  appendState?: boolean;
}

/**
 * The saved state grows by its changes until they weigh as much as the full state it starts from
 * (at least this much), or number this many; then a full state replaces it all. Restoring reads at
 * most about twice the full state, and a checkpoint writes the changes of a few seconds.
 */
export const STATE_LOG = { minBytes: 64 * 1024, maxChanges: 32 };

export const stateBytes = (plan: CommitPlan) =>
  plan.state.reduce((sum, chunk) => sum + chunk.length, 0);

/** The window aggregation of one shard, as the poller and its committer drive it. */
export interface ShardAggregation {
  /** At most this often, partial aggregates are written and the state is checkpointed. */
  readonly flushMs: number;
  /** Throws UnrestorableStateError when the saved state cannot be read back. */
  restore(): Promise<void>;
  add(measurements: Measurement[], now: number): void;
  /** The windows due now: every final one, and with `flushPartials` the changed open ones. */
  due(now: number, caughtUp: boolean, flushPartials: boolean): Aggregate[];
  /** The state to checkpoint once `aggregates` are written (it may close windows early to fit). */
  seal(aggregates: Aggregate[], now: number): CommitPlan;
  /** The plan is stored. */
  confirm(plan: CommitPlan): void;
  /** The table refused these windows (see WindowAggregator.reconcile). */
  reconcile(refused: Refusal[]): void;
}

/** A saved window state that cannot be read back: the shard must not run on without it. */
export class UnrestorableStateError extends Error {
  constructor(whose: string, why: string) {
    super(`window state of ${whose} cannot be restored: ${why}`);
    this.name = 'UnrestorableStateError';
  }
}

export interface StateSource {
  loadState(): Promise<Buffer | undefined>;
  /** For a child shard: the states its parents left at SHARD_END, with their hash ranges. */
  loadParentStates(): Promise<{ state: Buffer; range?: HashRange }[]>;
  /** The shard's hash key range, to keep only its own cities from a parent's state. */
  hashRange?: HashRange;
}

/**
 * A saved state is gzip members, one per segment (a full state, then its changes), each a line
 * of JSON: concatenated, they read as one stream. A state saved before the log is one line.
 */
const unpack = (b: Buffer) =>
  gunzipSync(b)
    .toString('utf8')
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as unknown);
const pack = (segment: unknown) => gzipSync(JSON.stringify(segment) + '\n');
const keyOf = (a: Aggregate) => windowKey(a.window, a.city_id, Date.parse(a.window_start));

/** One shard's windows: the pure WindowAggregator, its metrics, and its gzip-compressed snapshot. */
export class WindowedShardAggregation implements ShardAggregation {
  private readonly logger = new Logger(WindowedShardAggregation.name);
  private readonly aggregator: WindowAggregator;
  readonly flushMs: number;
  /** What the saved state holds since its last full state; undefined until one is saved. */
  private log?: { fullBytes: number; changeBytes: number; changes: number };

  constructor(
    private readonly shardId: string,
    settings: AggregationSettings & { flushMs: number },
    private readonly state: StateSource,
    private readonly metrics: MetricsService,
    private readonly chunkBytes: number,
    private readonly maxStateBytes = MAX_STATE_BYTES,
  ) {
    this.aggregator = new WindowAggregator(settings);
    this.flushMs = settings.flushMs;
  }

  /**
   * Its own state when it has one; else, for a child of a split or merge, the open windows and
   * watermarks its parents left for the cities it now holds.
   */
  async restore(): Promise<void> {
    const saved = await this.state.loadState();
    if (saved) {
      return this.readBack(this.shardId, () => this.aggregator.restore(unpack(saved), Date.now()));
    }
    const parents = await this.state.loadParentStates();
    if (parents.length === 0) return;
    const range = this.state.hashRange;
    this.readBack(`the parents of ${this.shardId}`, () =>
      this.aggregator.adopt(
        parents.map((p) => ({ snapshot: unpack(p.state), range: p.range })),
        (cityId) => !range || inRange(partitionHash(cityId), range),
        Date.now(),
      ),
    );
  }

  add(measurements: Measurement[], now: number): void {
    let closedEarly = 0;
    for (const m of measurements) {
      const result = this.aggregator.add(m, now);
      closedEarly += result.closedEarly;
      if (result.late.length > 0) {
        this.metrics.lateRecords.inc();
        this.logger.warn(
          `${this.shardId}: late record ${m.message_id} (${m.city_id} ${m.timestamp}) after its ${result.late.join(', ')} window was final: stored, not aggregated`,
        );
      }
    }
    if (closedEarly > 0) this.closedEarly(closedEarly, 'the cap on open windows');
  }

  due(now: number, caughtUp: boolean, flushPartials: boolean): Aggregate[] {
    return this.aggregator.collect(now, caughtUp, flushPartials);
  }

  seal(aggregates: Aggregate[], now: number): CommitPlan {
    const log = this.log;
    const delta = log && this.aggregator.delta({ written: aggregates });
    if (log && delta) {
      const changes = pack(delta);
      if (
        log.changes < STATE_LOG.maxChanges &&
        log.changeBytes + changes.length <= Math.max(log.fullBytes, STATE_LOG.minBytes)
      )
        return { aggregates, state: this.chunk(changes), appendState: true };
    }
    let packed = pack(this.aggregator.snapshot({ written: aggregates }));
    if (packed.length <= this.maxStateBytes) return { aggregates, state: this.chunk(packed) };
    // A transaction holds at most 4 MB: rather than stall the shard, save the sums without the
    // message ids, and say so. Duplicates that arrive after a restart could then count twice.
    this.metrics.oversizedState.inc();
    this.logger.error(
      `${this.shardId}: window state is ${(packed.length / 1048576).toFixed(1)} MB, above the ${(this.maxStateBytes / 1048576).toFixed(1)} MB ` +
        'a checkpoint can hold; saved without message ids. Add shards or lower AGGREGATION_MAX_OPEN_WINDOWS.',
    );
    let plan = aggregates;
    for (;;) {
      packed = pack(this.aggregator.snapshot({ written: plan, withoutIds: true }));
      if (packed.length <= this.maxStateBytes)
        return { aggregates: plan, state: this.chunk(packed) };
      // Still too large: close the oldest windows early until it fits, rather than stall.
      const closed = this.aggregator.closeOldest();
      if (closed === 0) return { aggregates: plan, state: this.chunk(packed) };
      this.closedEarly(closed, 'the size of the window state');
      const finals = new Map(
        this.aggregator.collect(now, false, false).map((a) => [keyOf(a), a] as const),
      );
      plan = [...plan.filter((a) => !finals.has(keyOf(a))), ...finals.values()];
    }
  }

  confirm(plan: CommitPlan): void {
    this.aggregator.confirm(plan.aggregates);
    if (plan.state.length > 0) {
      this.aggregator.stateSaved();
      const bytes = stateBytes(plan);
      this.log = plan.appendState
        ? {
            ...this.log!,
            changeBytes: this.log!.changeBytes + bytes,
            changes: this.log!.changes + 1,
          }
        : { fullBytes: bytes, changeBytes: 0, changes: 0 };
    }
    const now = Date.now();
    for (const a of plan.aggregates) {
      if (a.final)
        this.metrics.windowFinalisationDelay.observe((now - Date.parse(a.window_end)) / 1000);
    }
  }

  reconcile(refused: Refusal[]): void {
    const late = this.aggregator.reconcile(refused);
    for (const r of refused) {
      this.metrics.aggregatesRefused.inc({ stored: r.existing.final ? 'final' : 'larger_partial' });
    }
    if (late > 0) {
      this.metrics.lateRecords.inc(late);
      this.logger.warn(
        `${this.shardId}: ${late} record(s) arrived after the table already held their window as final: counted as late`,
      );
    }
  }

  private readBack(whose: string, restore: () => void): void {
    try {
      restore();
    } catch (error) {
      throw new UnrestorableStateError(whose, (error as Error).message);
    }
  }

  private closedEarly(count: number, why: string): void {
    this.metrics.windowsClosedEarly.inc(count);
    this.logger.warn(
      `${this.shardId}: ${count} oldest window(s) finalised early (finalised_early) because of ${why}; ${this.aggregator.openWindows} open`,
    );
  }

  private chunk(packed: Buffer): Buffer[] {
    const chunks: Buffer[] = [];
    for (let i = 0; i < packed.length; i += this.chunkBytes)
      chunks.push(packed.subarray(i, i + this.chunkBytes));
    return chunks.length > 0 ? chunks : [packed];
  }
}
