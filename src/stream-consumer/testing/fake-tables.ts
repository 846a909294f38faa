import { CommitPlan } from '../../aggregation/shard-aggregation';
import { Aggregate, Refusal } from '../../aggregation/window-aggregator';
import { Checkpoint, Lease, LeaseLostError } from '../lease.repository';
import { CommitStore } from '../shard-commit.repository';

/**
 * Whether the aggregates table takes `incoming` over `existing`: the conditions of
 * AggregatesRepository.putItem (a final is never replaced; a partial never replaces a final or a
 * larger partial). The e2e suite checks DynamoDB against this same function.
 */
export function tableAdmits(
  existing: Pick<Aggregate, 'final' | 'record_count'> | undefined,
  incoming: Pick<Aggregate, 'final' | 'record_count'>,
): boolean {
  if (!existing) return true;
  if (existing.final) return false;
  return incoming.final || existing.record_count <= incoming.record_count;
}

const keyOf = (a: Aggregate) => `${a.city_id}|${a.window}#${a.window_start}`;

interface StoredLease {
  owner: string | null;
  epoch: number;
  checkpoint?: string;
  checkpointSubSequenceNumber?: number;
  state?: Buffer[];
}

/**
 * The lease table and the aggregates table in memory, with the conditions the DynamoDB
 * implementation (ShardCommitRepository) puts in its transactions: every commit is fenced by the
 * lease's owner and epoch, and every window result by what the table holds.
 */
export class FakeTables implements CommitStore {
  readonly leases = new Map<string, StoredLease>();
  readonly aggregates = new Map<string, Aggregate>();
  /** Every applied write, in order. */
  readonly log: string[] = [];
  /** Decides what a commit call throws before it lands (an outage, a timeout). */
  failCommit?: (call: number) => Error | undefined;
  /** When set, each commit waits for it before it lands. */
  gate?: () => Promise<void>;
  commitCalls = 0;

  /** Takes `shardId` for `owner` (a new epoch), as LeaseRepository.take does. */
  take(shardId: string, owner: string): Lease {
    const stored = this.leases.get(shardId) ?? { owner: null, epoch: 0 };
    stored.owner = owner;
    stored.epoch += 1;
    this.leases.set(shardId, stored);
    this.log.push(`take ${shardId} ${owner} epoch ${stored.epoch}`);
    return {
      leaseKey: shardId,
      leaseOwner: owner,
      leaseCounter: stored.epoch,
      leaseEpoch: stored.epoch,
      checkpoint: stored.checkpoint,
      checkpointSubSequenceNumber: stored.checkpointSubSequenceNumber,
      parentShardIds: [],
      ownerSwitchesSinceCheckpoint: 0,
      stateChunks: stored.state?.length ?? 0,
    };
  }

  /** The state saved with the lease's checkpoint, as LeaseRepository.loadState gives it. */
  async loadState(shardId: string): Promise<Buffer | undefined> {
    const state = this.leases.get(shardId)?.state;
    return state && state.length > 0 ? Buffer.concat(state) : undefined;
  }

  checkpointOf(shardId: string): string | undefined {
    return this.leases.get(shardId)?.checkpoint;
  }

  /** The checkpoint as `sequence/subSequence` when it falls inside a KPL aggregate. */
  positionOf(shardId: string): string | undefined {
    const stored = this.leases.get(shardId);
    const sub = stored?.checkpointSubSequenceNumber;
    return sub === undefined ? stored?.checkpoint : `${stored!.checkpoint}/${sub}`;
  }

  async commit(
    lease: Lease,
    plan: CommitPlan,
    checkpoint: Checkpoint | undefined,
  ): Promise<Refusal[]> {
    this.commitCalls += 1;
    const sent = { owner: lease.leaseOwner, epoch: lease.leaseEpoch };
    const aggregates = plan.aggregates.map((a) => ({ ...a }));
    const error = this.failCommit?.(this.commitCalls);
    if (this.gate) await this.gate();
    else await Promise.resolve();
    if (error) throw error;
    const stored = this.leases.get(lease.leaseKey);
    if (!stored || stored.owner !== sent.owner || stored.epoch !== sent.epoch)
      throw new LeaseLostError(lease.leaseKey);
    const refused: Refusal[] = [];
    for (const a of aggregates) {
      const existing = this.aggregates.get(keyOf(a));
      if (!tableAdmits(existing, a))
        refused.push({
          aggregate: a,
          existing: { final: existing!.final, record_count: existing!.record_count },
        });
    }
    if (refused.length > 0) return refused;
    for (const a of aggregates) {
      this.aggregates.set(keyOf(a), a);
      this.log.push(
        `${a.final ? 'final' : 'partial'} ${keyOf(a)} ${a.record_count} by epoch ${sent.epoch}`,
      );
    }
    if (checkpoint !== undefined) {
      stored.checkpoint = checkpoint.sequenceNumber;
      stored.checkpointSubSequenceNumber = checkpoint.subSequenceNumber;
      stored.state = plan.appendState ? [...(stored.state ?? []), ...plan.state] : plan.state;
      lease.checkpoint = checkpoint.sequenceNumber;
      lease.checkpointSubSequenceNumber = checkpoint.subSequenceNumber;
      lease.stateChunks = stored.state.length;
      this.log.push(
        `checkpoint ${lease.leaseKey} ${this.positionOf(lease.leaseKey)} by epoch ${sent.epoch}`,
      );
    }
    return [];
  }

  /** The final windows, keyed city|window#start, without the fields a replay may change. */
  finals(): Map<string, Aggregate> {
    return new Map([...this.aggregates].filter(([, a]) => a.final));
  }
}
