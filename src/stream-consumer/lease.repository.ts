import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import {
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { Inject, Injectable } from '@nestjs/common';
import { AppConfig } from '../config/app.config';
import { APP_CONFIG } from '../config/config.tokens';
import { DYNAMODB_DOCUMENT_CLIENT } from '../infra/aws/aws.tokens';

export const SHARD_END = 'SHARD_END';

/** A shard lease with KCL's attribute names. */
export interface Lease {
  leaseKey: string;
  leaseOwner: string | null;
  leaseCounter: number;
  /** The last sequence number stored or dead-lettered, or SHARD_END; absent before the first. */
  checkpoint?: string;
  parentShardIds: string[];
  ownerSwitchesSinceCheckpoint: number;
}

export class LeaseLostError extends Error {
  constructor(shardId: string) {
    super(`lease of ${shardId} is no longer ours`);
    this.name = 'LeaseLostError';
  }
}

/**
 * Leases and checkpoints in the lease table. Every write is conditional on `leaseCounter`
 * (and the owner), so an instance that lost a lease can never move its checkpoint.
 */
@Injectable()
export class LeaseRepository {
  private readonly table: string;

  constructor(
    @Inject(DYNAMODB_DOCUMENT_CLIENT) private readonly db: DynamoDBDocumentClient,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.table = config.tables.leases;
  }

  async get(shardId: string): Promise<Lease | undefined> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.table, Key: { leaseKey: shardId }, ConsistentRead: true }),
    );
    return Item as Lease | undefined;
  }

  /** Takes the lease for `owner`, creating it when new; returns the lease as now stored. */
  async take(shardId: string, owner: string, parentShardIds: string[]): Promise<Lease> {
    const current = await this.get(shardId);
    if (!current) {
      const lease: Lease = {
        leaseKey: shardId,
        leaseOwner: owner,
        leaseCounter: 1,
        parentShardIds,
        ownerSwitchesSinceCheckpoint: 0,
      };
      try {
        await this.db.send(
          new PutCommand({
            TableName: this.table,
            Item: lease,
            ConditionExpression: 'attribute_not_exists(leaseKey)',
          }),
        );
        return lease;
      } catch (error) {
        if (error instanceof ConditionalCheckFailedException)
          return this.take(shardId, owner, parentShardIds);
        throw error;
      }
    }
    const switched = current.leaseOwner !== owner ? 1 : 0;
    try {
      const { Attributes } = await this.db.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { leaseKey: shardId },
          UpdateExpression:
            'SET leaseOwner = :owner, leaseCounter = leaseCounter + :one, ownerSwitchesSinceCheckpoint = ownerSwitchesSinceCheckpoint + :switched',
          ConditionExpression: 'leaseCounter = :counter',
          ExpressionAttributeValues: {
            ':owner': owner,
            ':one': 1,
            ':switched': switched,
            ':counter': current.leaseCounter,
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return Attributes as Lease;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) throw new LeaseLostError(shardId);
      throw error;
    }
  }

  /** Moves the checkpoint; throws LeaseLostError when the lease changed hands or counter. */
  async checkpoint(lease: Lease, sequenceNumber: string): Promise<void> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { leaseKey: lease.leaseKey },
          UpdateExpression: 'SET checkpoint = :checkpoint, ownerSwitchesSinceCheckpoint = :zero',
          ConditionExpression: 'leaseOwner = :owner AND leaseCounter = :counter',
          ExpressionAttributeValues: {
            ':checkpoint': sequenceNumber,
            ':zero': 0,
            ':owner': lease.leaseOwner,
            ':counter': lease.leaseCounter,
          },
        }),
      );
      lease.checkpoint = sequenceNumber;
      lease.ownerSwitchesSinceCheckpoint = 0;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException)
        throw new LeaseLostError(lease.leaseKey);
      throw error;
    }
  }

  /** Gives the lease up (owner cleared) so another instance can take it at once. */
  async release(lease: Lease): Promise<void> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { leaseKey: lease.leaseKey },
          UpdateExpression: 'SET leaseOwner = :none, leaseCounter = leaseCounter + :one',
          ConditionExpression: 'leaseOwner = :owner AND leaseCounter = :counter',
          ExpressionAttributeValues: {
            ':none': null,
            ':one': 1,
            ':owner': lease.leaseOwner,
            ':counter': lease.leaseCounter,
          },
        }),
      );
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
    }
  }
}
