import {
  BatchExecuteStatementInput,
  BatchExecuteStatementOutput,
  UpdateItemInput,
  UpdateItemOutput,
} from '@aws-sdk/client-dynamodb';
import {
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  ScanCommand,
  TransactWriteCommandInput,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { convertToAttr, marshall } from '@aws-sdk/util-dynamodb';
import { Inject, Injectable } from '@nestjs/common';
import DataLoader from 'dataloader';
import { HashRange } from '../aggregation/hash-range';
import { UnrestorableStateError } from '../aggregation/shard-aggregation';
import { AppConfig } from '../config/app.config';
import { APP_CONFIG } from '../config/config.tokens';
import { DirectCall, dynamoDbDirectCall } from '../infra/aws/direct-call';
import { DOCUMENT_MARSHALLING } from '../infra/aws/aws-clients';
import { getAll } from '../infra/aws/dynamodb-calls';
import { DYNAMODB_DOCUMENT_CLIENT } from '../infra/aws/aws.tokens';

type TransactItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];

export const SHARD_END = 'SHARD_END';

/** BatchExecuteStatement takes at most 25 statements. */
const STATEMENTS_PER_CALL = 25;

/** A renewal as asked for: the lease's key, owner and epoch at that moment. */
interface Renewal {
  leaseKey: string;
  owner: string | null | undefined;
  epoch: number | undefined;
  signal?: AbortSignal;
}

/** `pending`, or an `AbortError` as soon as the renewal's own signal aborts. */
function untilAborted<T>(pending: Promise<T>, { leaseKey, signal }: Renewal): Promise<T> {
  if (!signal) return pending;
  let onAbort: () => void = () => undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () =>
      reject(
        Object.assign(new Error(`renewal of ${leaseKey} aborted`), {
          name: 'AbortError',
          cause: signal.reason as unknown,
        }),
      );
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([pending, aborted]).finally(() =>
    signal.removeEventListener('abort', onAbort),
  );
}

/** A position in a shard: a whole record, or a KPL aggregate up to its user record `subSequenceNumber`. */
export interface Checkpoint {
  sequenceNumber: string;
  subSequenceNumber?: number;
}

/** The lease's checkpoint as a position; undefined before the first. */
export const positionOf = (
  lease: Pick<Lease, 'checkpoint' | 'checkpointSubSequenceNumber'>,
): Checkpoint | undefined =>
  lease.checkpoint === undefined
    ? undefined
    : {
        sequenceNumber: lease.checkpoint,
        ...(lease.checkpointSubSequenceNumber === undefined
          ? {}
          : { subSequenceNumber: lease.checkpointSubSequenceNumber }),
      };

export const samePosition = (a: Checkpoint | undefined, b: Checkpoint | undefined) =>
  a?.sequenceNumber === b?.sequenceNumber && a?.subSequenceNumber === b?.subSequenceNumber;
/** Items of the lease table that are not shard leases start with this (heartbeats). */
export const INSTANCE_PREFIX = 'instance#';

/** A shard lease with KCL's attribute names. */
export interface Lease {
  leaseKey: string;
  leaseOwner: string | null;
  leaseCounter: number;
  /**
   * Moves each time the lease changes hands (a fencing token): every write of an owner is
   * conditional on it, so renewals (which move leaseCounter) never break a checkpoint, and an
   * owner that lost the lease, even for a moment, can never write again.
   */
  leaseEpoch: number;
  /** The last sequence number stored or dead-lettered, or SHARD_END; absent before the first. */
  checkpoint?: string;
  /**
   * Set when the checkpoint falls inside a KPL aggregate: its user records up to this index were
   * stored or dead-lettered, the others not yet (KCL's name and meaning).
   */
  checkpointSubSequenceNumber?: number;
  parentShardIds: string[];
  ownerSwitchesSinceCheckpoint: number;
  /** How many window-state items (`state#<shard>#<i>`, in the state table) go with the checkpoint. */
  stateChunks?: number;
  /**
   * Not stored: the state was read from the lease table, where versions before the state table
   * kept it; the next checkpoint removes those items.
   */
  legacyStateChunks?: number;
  startingHashKey?: string;
  endingHashKey?: string;
}

/** Window state is cut into items of this size; a transaction holds up to 99 of them. */
export const STATE_CHUNK_BYTES = 350 * 1024;
const stateKey = (shardId: string, i: number) => `state#${shardId}#${i}`;

/**
 * Whether a checkpoint also deletes the state an older version left in the lease table: when
 * those items fit in its transaction (100 items: the lease update and the new chunks too).
 */
const movesLegacyState = (lease: Lease, state: Buffer[]) =>
  1 + state.length + (lease.legacyStateChunks ?? 0) <= 100;

/** An instance's heartbeat: its `leaseCounter` moves every renewal while it lives. */
export interface InstanceHeartbeat {
  leaseKey: string;
  owner: string;
  leaseCounter: number;
  leasesHeld: number;
  heartbeatAt: string;
}

export class LeaseLostError extends Error {
  constructor(shardId: string) {
    super(`lease of ${shardId} is no longer ours`);
    this.name = 'LeaseLostError';
  }
}

/** The lease table as the coordinator sees it; a fake implements it in unit tests. */
export interface LeaseStore {
  scan(): Promise<{ leases: Lease[]; instances: InstanceHeartbeat[] }>;
  create(
    shardId: string,
    parentShardIds: string[],
    hashRange?: { startingHashKey: string; endingHashKey: string },
  ): Promise<void>;
  /** Takes `seen` for `owner` if its counter is still `seen.leaseCounter`; undefined if not. */
  take(seen: Lease, owner: string): Promise<Lease | undefined>;
  /** Increments the counter; throws LeaseLostError when owner or epoch moved. */
  renew(lease: Lease, signal?: AbortSignal): Promise<void>;
  release(lease: Lease, signal?: AbortSignal): Promise<void>;
  heartbeat(owner: string, leasesHeld: number): Promise<void>;
  removeInstance(owner: string, leaseCounter?: number, signal?: AbortSignal): Promise<void>;
}

// By name: the SDK's calls and the direct ones (see direct-call.ts) refuse alike.
const isConditionFailure = (error: unknown) =>
  error instanceof Error && error.name === 'ConditionalCheckFailedException';
const OWNED = 'leaseOwner = :owner AND leaseEpoch = :epoch';
const ownedValues = (lease: Lease) => ({ ':owner': lease.leaseOwner, ':epoch': lease.leaseEpoch });
const asLease = (item: Record<string, unknown> | undefined) =>
  ({ parentShardIds: [], leaseEpoch: 0, ...item }) as unknown as Lease;

/**
 * Leases, checkpoints and heartbeats in the lease table. Every write of an owner is conditional
 * on `leaseOwner` and `leaseEpoch`, so an instance that lost a lease can never move its
 * checkpoint; taking a lease is conditional on the `leaseCounter` the taker saw standing still.
 */
@Injectable()
export class LeaseRepository implements LeaseStore {
  private readonly table: string;
  private readonly stateTable: string;

  /** Releases and checkpoints without a state, without the SDK's command stack (see direct-call.ts). */
  private readonly updateItem: DirectCall<UpdateItemInput, UpdateItemOutput>;
  private readonly executeStatements: DirectCall<
    BatchExecuteStatementInput,
    BatchExecuteStatementOutput
  >;
  /**
   * The renewals asked for in one tick (the coordinator renews every held lease at once), sent
   * together: one conditional PartiQL UPDATE each, 25 to a call. They are most of what an idle
   * instance sends to DynamoDB: with 32 leases, 2 calls a cycle instead of 32.
   */
  private readonly renewals = new DataLoader<Renewal, void>((batch) => this.renewBatch(batch), {
    cache: false,
    maxBatchSize: STATEMENTS_PER_CALL,
  });

  constructor(
    @Inject(DYNAMODB_DOCUMENT_CLIENT) private readonly db: DynamoDBDocumentClient,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.table = config.tables.leases;
    this.stateTable = config.tables.state;
    this.updateItem = dynamoDbDirectCall('UpdateItem', db);
    this.executeStatements = dynamoDbDirectCall('BatchExecuteStatement', db);
  }

  async scan(): Promise<{ leases: Lease[]; instances: InstanceHeartbeat[] }> {
    const leases: Lease[] = [];
    const instances: InstanceHeartbeat[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.db.send(
        new ScanCommand({
          TableName: this.table,
          ConsistentRead: true,
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of page.Items ?? []) {
        const key = item.leaseKey as string;
        if (key.startsWith(INSTANCE_PREFIX)) instances.push(item as InstanceHeartbeat);
        else if (key.startsWith('shardId-')) leases.push(asLease(item));
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return { leases, instances };
  }

  async create(
    shardId: string,
    parentShardIds: string[],
    hashRange?: { startingHashKey: string; endingHashKey: string },
  ): Promise<void> {
    const lease: Lease = {
      leaseKey: shardId,
      leaseOwner: null,
      leaseCounter: 0,
      leaseEpoch: 0,
      parentShardIds,
      ownerSwitchesSinceCheckpoint: 0,
      ...hashRange,
    };
    try {
      await this.db.send(
        new PutCommand({
          TableName: this.table,
          Item: lease,
          ConditionExpression: 'attribute_not_exists(leaseKey)',
        }),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
    }
  }

  async take(seen: Lease, owner: string): Promise<Lease | undefined> {
    try {
      const { Attributes } = await this.db.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { leaseKey: seen.leaseKey },
          UpdateExpression:
            'SET leaseOwner = :owner, leaseCounter = leaseCounter + :one, leaseEpoch = if_not_exists(leaseEpoch, :zero) + :one, ' +
            'ownerSwitchesSinceCheckpoint = ownerSwitchesSinceCheckpoint + :switched',
          ConditionExpression: 'leaseCounter = :counter',
          ExpressionAttributeValues: {
            ':owner': owner,
            ':one': 1,
            ':zero': 0,
            ':switched': seen.leaseOwner !== owner ? 1 : 0,
            ':counter': seen.leaseCounter,
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return asLease(Attributes);
    } catch (error) {
      if (isConditionFailure(error)) return undefined;
      throw error;
    }
  }

  /**
   * Renews with the other renewals of the same tick (see `renewals`), fenced by the owner and
   * epoch the lease has now. A call that fails fails each of its renewals. `signal` ends this
   * renewal alone (an `AbortError`); the call itself is aborted once all of its renewals are.
   */
  async renew(lease: Lease, signal?: AbortSignal): Promise<void> {
    const renewal = {
      leaseKey: lease.leaseKey,
      owner: lease.leaseOwner,
      epoch: lease.leaseEpoch,
      signal,
    };
    await untilAborted(this.renewals.load(renewal), renewal);
    lease.leaseCounter += 1;
  }

  /** One result per renewal: undefined when renewed, else why not (LeaseLostError, …). */
  private async renewBatch(batch: readonly Renewal[]): Promise<(Error | undefined)[]> {
    const call = new AbortController();
    let aborted = 0;
    const onAbort = () => ++aborted === batch.length && call.abort();
    for (const { signal } of batch) {
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
    }
    try {
      const { Responses = [] } = await this.executeStatements.send(
        {
          Statements: batch.map(({ leaseKey, owner, epoch }) => ({
            Statement:
              `UPDATE "${this.table}" SET "leaseCounter" = "leaseCounter" + 1 ` +
              'WHERE "leaseKey" = ? AND "leaseOwner" = ? AND "leaseEpoch" = ?',
            Parameters: [leaseKey, owner, epoch].map((value) =>
              convertToAttr(value, DOCUMENT_MARSHALLING),
            ),
          })),
        },
        { abortSignal: call.signal },
      );
      if (Responses.length !== batch.length)
        throw new Error(`${Responses.length} answers to ${batch.length} renewals`);
      return Responses.map(({ Error: refused }, i) => {
        if (!refused) return undefined;
        if (refused.Code === 'ConditionalCheckFailed') return new LeaseLostError(batch[i].leaseKey);
        return Object.assign(new Error(refused.Message ?? String(refused.Code)), {
          name: String(refused.Code ?? 'UnknownError'),
        });
      });
    } catch (error) {
      return batch.map(() => error as Error);
    } finally {
      for (const { signal } of batch) signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * The transaction items that move the checkpoint and replace the window state (cut into
   * `state` chunks, in the state table, so that the lease cycle's Scan never reads them), or with
   * `append` add the chunks after it, conditional on the lease being ours. The lease update moves
   * leaseCounter as a renewal does (see ownershipRenewal). Call `checkpointed` once they landed.
   */
  checkpointItems(
    lease: Lease,
    checkpoint: Checkpoint,
    state: Buffer[],
    append = false,
  ): TransactItem[] {
    if (append && lease.legacyStateChunks)
      throw new Error(`the window state of ${lease.leaseKey} must be replaced before it grows`);
    // A state read from the lease table has nothing in the state table to replace.
    const previous = lease.legacyStateChunks ? 0 : (lease.stateChunks ?? 0);
    const first = append ? previous : 0;
    const stale = append ? 0 : Math.max(0, previous - state.length);
    const legacyDeletes = movesLegacyState(lease, state) ? (lease.legacyStateChunks ?? 0) : 0;
    if (1 + state.length + stale + legacyDeletes > 100)
      throw new Error(`window state of ${lease.leaseKey} is too large for one transaction`);
    const sub = checkpoint.subSequenceNumber;
    return [
      {
        Update: {
          TableName: this.table,
          Key: { leaseKey: lease.leaseKey },
          UpdateExpression:
            'SET checkpoint = :checkpoint, leaseCounter = leaseCounter + :one, ' +
            'ownerSwitchesSinceCheckpoint = :zero, stateChunks = :chunks' +
            (sub === undefined
              ? ' REMOVE checkpointSubSequenceNumber'
              : ', checkpointSubSequenceNumber = :sub'),
          ConditionExpression: OWNED,
          ExpressionAttributeValues: {
            ':checkpoint': checkpoint.sequenceNumber,
            ':one': 1,
            ':zero': 0,
            ':chunks': first + state.length,
            ...(sub === undefined ? {} : { ':sub': sub }),
            ...ownedValues(lease),
          },
        },
      },
      ...state.map((data, i) => ({
        Put: {
          TableName: this.stateTable,
          Item: { leaseKey: stateKey(lease.leaseKey, first + i), data },
        },
      })),
      ...Array.from({ length: stale }, (_, i) => ({
        Delete: {
          TableName: this.stateTable,
          Key: { leaseKey: stateKey(lease.leaseKey, state.length + i) },
        },
      })),
      ...Array.from({ length: legacyDeletes }, (_, i) => ({
        Delete: { TableName: this.table, Key: { leaseKey: stateKey(lease.leaseKey, i) } },
      })),
    ];
  }

  checkpointed(lease: Lease, checkpoint: Checkpoint, state: Buffer[], append = false): void {
    lease.checkpoint = checkpoint.sequenceNumber;
    lease.checkpointSubSequenceNumber = checkpoint.subSequenceNumber;
    lease.ownerSwitchesSinceCheckpoint = 0;
    lease.stateChunks = (append ? (lease.stateChunks ?? 0) : 0) + state.length;
    if (movesLegacyState(lease, state)) delete lease.legacyStateChunks;
  }

  /**
   * A transaction item that holds only while the lease is ours, so it fences the others, and
   * moves leaseCounter as the checkpoint's lease update does: every commit transaction renews.
   * In a transaction it costs the same write units as a bare condition check.
   */
  ownershipRenewal(lease: Lease): TransactItem {
    return {
      Update: {
        TableName: this.table,
        Key: { leaseKey: lease.leaseKey },
        UpdateExpression: 'SET leaseCounter = leaseCounter + :one',
        ConditionExpression: OWNED,
        ExpressionAttributeValues: { ':one': 1, ...ownedValues(lease) },
      },
    };
  }

  /** The window states its parents left at SHARD_END, for a child shard that starts afresh. */
  async loadParentStates(lease: Lease): Promise<{ state: Buffer; range?: HashRange }[]> {
    const states: { state: Buffer; range?: HashRange }[] = [];
    for (const parentId of lease.parentShardIds) {
      const { Item } = await this.db.send(
        new GetCommand({
          TableName: this.table,
          Key: { leaseKey: parentId },
          ConsistentRead: true,
          ProjectionExpression: 'leaseKey, stateChunks, startingHashKey, endingHashKey',
        }),
      );
      if (!Item) continue;
      const parent = Item as Lease;
      const state = await this.loadState(parent);
      if (state) states.push({ state, range: hashRangeOf(parent) });
    }
    return states;
  }

  /**
   * The window state saved with the lease's checkpoint, or undefined when there is none. Throws
   * UnrestorableStateError when chunks are missing. A state saved by a version that kept it in
   * the lease table is read from there (and marked, so that the next checkpoint moves it).
   */
  async loadState(
    lease: Pick<Lease, 'leaseKey' | 'stateChunks' | 'legacyStateChunks'>,
  ): Promise<Buffer | undefined> {
    const count = lease.stateChunks ?? 0;
    if (count === 0) return undefined;
    const keys = Array.from({ length: count }, (_, i) => ({
      leaseKey: stateKey(lease.leaseKey, i),
    }));
    const chunks = async (table: string) => {
      const found = new Map<string, Uint8Array>();
      for (const item of await getAll(this.db, table, keys))
        found.set(item.leaseKey as string, item.data as Uint8Array);
      return found;
    };
    let found = await chunks(this.stateTable);
    if (found.size === 0) {
      found = await chunks(this.table);
      if (found.size > 0) lease.legacyStateChunks = count;
    }
    if (found.size !== count)
      throw new UnrestorableStateError(
        lease.leaseKey,
        `${count - found.size} of its ${count} chunk(s) are missing`,
      );
    return Buffer.concat(keys.map((k) => Buffer.from(found.get(k.leaseKey)!)));
  }

  /** Gives the lease up (owner cleared) so another instance can take it at once. */
  async release(lease: Lease, signal?: AbortSignal): Promise<void> {
    try {
      await this.ownedUpdate(
        lease,
        'SET leaseOwner = :none, leaseCounter = leaseCounter + :one',
        { ':none': null, ':one': 1 },
        signal,
      );
      lease.leaseOwner = null;
    } catch (error) {
      if (!(error instanceof LeaseLostError)) throw error;
    }
  }

  async heartbeat(owner: string, leasesHeld: number): Promise<void> {
    await this.db.send(
      new UpdateCommand({
        TableName: this.table,
        Key: { leaseKey: `${INSTANCE_PREFIX}${owner}` },
        UpdateExpression:
          'SET #owner = :owner, leasesHeld = :held, heartbeatAt = :at ADD leaseCounter :one',
        ExpressionAttributeNames: { '#owner': 'owner' },
        ExpressionAttributeValues: {
          ':owner': owner,
          ':held': leasesHeld,
          ':at': new Date().toISOString(),
          ':one': 1,
        },
      }),
    );
  }

  /** Removes a heartbeat; with `leaseCounter`, only if it has not moved since (a dead instance). */
  async removeInstance(owner: string, leaseCounter?: number, signal?: AbortSignal): Promise<void> {
    try {
      await this.db.send(
        new DeleteCommand({
          TableName: this.table,
          Key: { leaseKey: `${INSTANCE_PREFIX}${owner}` },
          ...(leaseCounter === undefined
            ? {}
            : {
                ConditionExpression: 'leaseCounter = :counter',
                ExpressionAttributeValues: { ':counter': leaseCounter },
              }),
        }),
        { abortSignal: signal },
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
    }
  }

  private async ownedUpdate(
    lease: Lease,
    update: string,
    values: Record<string, unknown>,
    signal?: AbortSignal,
  ): Promise<void> {
    try {
      await this.updateItem.send(
        {
          TableName: this.table,
          Key: marshall({ leaseKey: lease.leaseKey }, DOCUMENT_MARSHALLING),
          UpdateExpression: update,
          ConditionExpression: OWNED,
          ExpressionAttributeValues: marshall(
            { ...values, ...ownedValues(lease) },
            DOCUMENT_MARSHALLING,
          ),
        },
        { abortSignal: signal },
      );
    } catch (error) {
      if (isConditionFailure(error)) throw new LeaseLostError(lease.leaseKey);
      throw error;
    }
  }
}

/** The hash key range KCL stores on a lease, when it is there. */
export function hashRangeOf(
  lease: Pick<Lease, 'startingHashKey' | 'endingHashKey'>,
): HashRange | undefined {
  return lease.startingHashKey && lease.endingHashKey
    ? { start: BigInt(lease.startingHashKey), end: BigInt(lease.endingHashKey) }
    : undefined;
}
