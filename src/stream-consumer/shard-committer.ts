import { ShardAggregation } from '../aggregation/shard-aggregation';
import { Checkpoint, Lease, positionOf, samePosition } from './lease.repository';
import { CommitStore } from './shard-commit.repository';

/** Runs a DynamoDB step under the shard's retry policy (see ShardRetrier.run). */
export type Retry = <T>(operation: string, action: () => Promise<T>) => Promise<T>;

/** Writes what `store` deferred for the speed layer (the per-city latest items). */
export interface LatestFlusher {
  flush(): Promise<void>;
}

/** A busy shard checkpoints (with its window state) at most this often; an idle one at once. */
export const CHECKPOINT_INTERVAL_MS = 5000;

/**
 * The one commit path of a shard: write the window results that are due, then checkpoint the
 * processed position with the window state, all fenced by the lease in the table. A checkpoint is
 * written only after every earlier record of the shard was stored or dead-lettered (the caller
 * passes only such a position) and its city's latest item was written. Results may be written
 * ahead of the checkpoint: a next owner that reads their records again computes the same
 * windows, and the table refuses what it already holds (see WindowAggregator.reconcile).
 */
export class ShardCommitter {
  private lastCommitAt: number;
  private lastCheckpointAt: number;

  constructor(
    private readonly lease: Lease,
    private readonly aggregation: ShardAggregation,
    private readonly store: CommitStore,
    private readonly latest: LatestFlusher,
    private readonly clock: () => number = Date.now,
  ) {
    this.lastCommitAt = clock();
    this.lastCheckpointAt = this.lastCommitAt;
  }

  /**
   * Commits when there is something to commit: a final window, or (every flush interval, or with
   * `force`) changed windows or a position past the checkpoint. The checkpoint and the window
   * state go with it when forced, with `checkpointNow` (the last read was empty, or a step inside
   * a large page) or every CHECKPOINT_INTERVAL_MS; else only the results, fenced by the lease.
   * Returns whether it wrote.
   * Throws LeaseLostError when the lease moved: then nothing of this commit was written.
   */
  async commit(
    position: Checkpoint | undefined,
    options: { caughtUp: boolean; force: boolean; checkpointNow?: boolean },
    retry: Retry,
  ): Promise<boolean> {
    const now = this.clock();
    const flush = options.force || now - this.lastCommitAt >= this.aggregation.flushMs;
    let aggregates = this.aggregation.due(now, options.caughtUp, flush);
    const moved = position !== undefined && !samePosition(position, positionOf(this.lease));
    const checkpointDue =
      options.force ||
      options.checkpointNow ||
      now - this.lastCheckpointAt >= CHECKPOINT_INTERVAL_MS;
    const checkpointing = flush && moved && checkpointDue;
    if (aggregates.length === 0 && !checkpointing) return false;
    const checkpoint = checkpointing ? (position ?? positionOf(this.lease)) : undefined;
    await retry('latest write', () => this.latest.flush());
    for (;;) {
      const plan =
        checkpoint === undefined
          ? { aggregates, state: [] }
          : this.aggregation.seal(aggregates, now);
      const refused = await retry('commit', () => this.store.commit(this.lease, plan, checkpoint));
      if (refused.length === 0) {
        this.aggregation.confirm(plan);
        this.lastCommitAt = now;
        if (checkpoint !== undefined) this.lastCheckpointAt = now;
        return true;
      }
      this.aggregation.reconcile(refused);
      aggregates = this.aggregation.due(now, false, flush);
    }
  }
}
