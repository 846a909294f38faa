import { backoffDelay, BackoffPolicy, sleep } from '../common/backoff';
import { UnrestorableStateError } from '../aggregation/shard-aggregation';
import { LeaseLostError } from './lease.repository';

/** Thrown out of a retry loop when the poller was asked to stop. */
export class StoppedError extends Error {
  constructor() {
    super('stopped');
    this.name = 'StoppedError';
  }
}

/** What the shard is waiting for while a dependency fails. */
export interface Stall {
  since: number;
  on: string;
  attempts: number;
  lastError: string;
}

export interface RetrierHooks {
  warn(message: string): void;
  /** Called before each back-off, for metrics. */
  onRetry?(operation: string): void;
}

export const describeError = (error: unknown) =>
  error instanceof Error ? `${error.name}: ${error.message}`.slice(0, 500) : String(error);

/** Errors no retry can fix for this shard: they end the poller. */
const ENDS_THE_POLLER = [LeaseLostError, UnrestorableStateError, StoppedError];

/**
 * The one retry policy of a shard: an unavailable, slow or throttled dependency is retried with
 * capped, jittered back-off for as long as it takes, and the shard reports itself stalled
 * meanwhile. Only a lost lease, an unrestorable state or a stop end the loop.
 */
export class ShardRetrier {
  private current?: Stall;

  constructor(
    private readonly shardId: string,
    private readonly policy: BackoffPolicy,
    private readonly signal: AbortSignal,
    private readonly hooks: RetrierHooks,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Since when, and on what, the shard has been failing; undefined while it makes progress. */
  get stall(): Stall | undefined {
    return this.current;
  }

  /**
   * Runs `action` until it succeeds. `giveUp` names errors to throw at once instead (such as an
   * error that belongs to one record); `attempts` bounds the tries (for the shutdown path).
   */
  async run<T>(
    operation: string,
    action: () => Promise<T>,
    options: { giveUp?: (error: unknown) => boolean; attempts?: number } = {},
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      if (this.signal.aborted && options.attempts === undefined) throw new StoppedError();
      try {
        const result = await action();
        // The read of the next page runs while a commit is retried: only the stalled operation
        // itself ends the stall.
        if (this.current?.on === operation) this.current = undefined;
        return result;
      } catch (error) {
        if (ENDS_THE_POLLER.some((type) => error instanceof type)) throw error;
        if (options.giveUp?.(error)) throw error;
        if (options.attempts !== undefined && attempt >= options.attempts) throw error;
        this.failed(operation, error);
        await sleep(backoffDelay(attempt, this.policy), options.attempts ? undefined : this.signal);
      }
    }
  }

  private failed(operation: string, error: unknown): void {
    const lastError = describeError(error);
    const stall = this.current?.on === operation ? this.current : undefined;
    this.current = {
      since: stall?.since ?? this.current?.since ?? this.clock(),
      on: operation,
      attempts: (stall?.attempts ?? 0) + 1,
      lastError,
    };
    this.hooks.onRetry?.(operation);
    this.hooks.warn(
      `${this.shardId}: ${operation} failed (attempt ${this.current.attempts}), retrying: ${lastError}`,
    );
  }
}
