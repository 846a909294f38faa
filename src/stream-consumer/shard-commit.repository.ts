import { CancellationReason } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { Inject, Injectable } from '@nestjs/common';
import { AggregatesRepository } from '../aggregation/aggregates.repository';
import { CommitPlan } from '../aggregation/shard-aggregation';
import { Aggregate, Refusal } from '../aggregation/window-aggregator';
import { DYNAMODB_DOCUMENT_CLIENT } from '../infra/aws/aws.tokens';
import {
  marshallTransactItem,
  TransactItem,
  TransactWriteCall,
  transactWriteCall,
} from '../infra/aws/dynamodb-calls';
import { Checkpoint, Lease, LeaseLostError, LeaseRepository } from './lease.repository';

/** TransactWriteItems holds at most 100 items and 4 MB. */
const MAX_ITEMS = 100;
const MAX_BYTES = 4_000_000;
const bytesOf = (item: TransactItem) =>
  item.Put?.Item?.data instanceof Uint8Array
    ? item.Put.Item.data.byteLength + 200
    : JSON.stringify(item).length;

/** Where a shard's results and checkpoint go; a fake honours the same conditions in unit tests. */
export interface CommitStore {
  /**
   * Writes `plan.aggregates` (each conditional on what the table holds) and, with `checkpoint`,
   * moves the checkpoint and replaces the window state: every transaction is conditional on the
   * lease still being ours (owner and epoch), so a writer that lost it writes nothing. Resolves
   * with the windows the table refused; when there are some, the checkpoint was not written.
   * Throws LeaseLostError when the lease moved, and the DynamoDB error when a call failed.
   */
  commit(lease: Lease, plan: CommitPlan, checkpoint: Checkpoint | undefined): Promise<Refusal[]>;
}

/**
 * One commit as DynamoDB transactions: the checkpoint transaction (lease update, state chunks,
 * and as many window results as fit) comes last; results that do not fit go first, each
 * transaction with a condition check on the lease.
 */
@Injectable()
export class ShardCommitRepository implements CommitStore {
  private readonly transactWrite: TransactWriteCall;

  constructor(
    @Inject(DYNAMODB_DOCUMENT_CLIENT) private readonly db: DynamoDBDocumentClient,
    private readonly leases: LeaseRepository,
    private readonly aggregates: AggregatesRepository,
  ) {
    this.transactWrite = transactWriteCall(db);
  }

  async commit(
    lease: Lease,
    plan: CommitPlan,
    checkpoint: Checkpoint | undefined,
  ): Promise<Refusal[]> {
    const updatedAt = new Date().toISOString();
    const results = plan.aggregates.map((aggregate) => ({
      aggregate,
      item: this.aggregates.putItem(aggregate, updatedAt),
    }));
    const last =
      checkpoint === undefined
        ? [this.leases.ownershipRenewal(lease)]
        : this.leases.checkpointItems(lease, checkpoint, plan.state, plan.appendState);
    let room = MAX_ITEMS - last.length;
    let bytes = MAX_BYTES - last.reduce((sum, item) => sum + bytesOf(item), 0);
    let split = results.length;
    while (split > 0 && room > 0 && bytes - bytesOf(results[split - 1].item) > 0) {
      split -= 1;
      room -= 1;
      bytes -= bytesOf(results[split].item);
    }
    const early = results.slice(0, split);
    for (let i = 0; i < early.length; i += MAX_ITEMS - 1) {
      const group = early.slice(i, i + MAX_ITEMS - 1);
      const refused = await this.transact(lease, [this.leases.ownershipRenewal(lease)], group);
      if (refused.length > 0) return refused;
    }
    const refused = await this.transact(lease, last, results.slice(split));
    if (refused.length === 0 && checkpoint !== undefined)
      this.leases.checkpointed(lease, checkpoint, plan.state, plan.appendState);
    return refused;
  }

  /** `fixed[0]` fences the transaction on the lease and renews it; the results follow. */
  private async transact(
    lease: Lease,
    fixed: TransactItem[],
    results: { aggregate: Aggregate; item: TransactItem }[],
  ): Promise<Refusal[]> {
    try {
      await this.transactWrite.send({
        TransactItems: [...fixed, ...results.map((r) => r.item)].map(marshallTransactItem),
      });
      // `fixed[0]` moved the lease's counter: the owner's copy follows, for the coordinator.
      lease.leaseCounter += 1;
      return [];
    } catch (error) {
      if (!isCancelled(error)) throw error;
      const reasons = error.CancellationReasons ?? [];
      if (reasons[0]?.Code === 'ConditionalCheckFailed') throw new LeaseLostError(lease.leaseKey);
      const refused: Refusal[] = [];
      for (const [i, r] of results.entries()) {
        const reason = reasons[fixed.length + i];
        if (reason?.Code !== 'ConditionalCheckFailed') continue;
        refused.push({
          aggregate: r.aggregate,
          existing: reason.Item ? fromAttributes(reason.Item) : await this.stored(r.aggregate),
        });
      }
      // Conflicts with another transaction or throttling: the caller retries.
      if (refused.length === 0) throw error;
      return refused;
    }
  }

  private async stored(aggregate: Aggregate): Promise<Refusal['existing']> {
    const { Item } = await this.db.send(
      new GetCommand({
        TableName: this.aggregates.table,
        Key: {
          city_id: aggregate.city_id,
          window_key: `${aggregate.window}#${aggregate.window_start}`,
        },
        ConsistentRead: true,
        ProjectionExpression: '#final, record_count',
        ExpressionAttributeNames: { '#final': 'final' },
      }),
    );
    return { final: Item?.final === true, record_count: Number(Item?.record_count ?? 0) };
  }
}

/** The two attributes a refusal needs, from the item DynamoDB returns with a failed condition. */
const isCancelled = (
  error: unknown,
): error is Error & { CancellationReasons?: CancellationReason[] } =>
  error instanceof Error && error.name === 'TransactionCanceledException';

function fromAttributes(item: Record<string, { BOOL?: boolean; N?: string }>) {
  return { final: item.final?.BOOL === true, record_count: Number(item.record_count?.N ?? 0) };
}
