import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DescribeStreamSummaryCommand, KinesisClient } from '@aws-sdk/client-kinesis';
import { Inject, Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { AppConfig } from '../config/app.config';
import { APP_CONFIG } from '../config/config.tokens';
import { DYNAMODB_CLIENT, KINESIS_CLIENT } from '../infra/aws/aws.tokens';
import { PollerStatus } from '../stream-consumer/shard-poller';
import { StreamConsumerService } from '../stream-consumer/stream-consumer.service';
import { ShortLivedCache } from './short-lived-cache';

const TIMEOUT_MS = 2000;
/**
 * Probes share the stream's and the tables' answers this long: DescribeStreamSummary is limited to
 * 20 calls a second per account, shared by every instance and every probe. Shorter than the
 * consumer's stall threshold, so a failing table shows by the time shards are reported stalled.
 * The consumer's part is in memory and stays live.
 */
export const RESOURCES_CACHE_MS = 2000;

interface Checked {
  up: boolean;
  data: Record<string, unknown>;
}
const errorName = (error: unknown) => (error instanceof Error ? error.name : 'Error');

/** Readiness: the stream is ACTIVE, the tables answer, the consumer holds or is acquiring leases. */
@Injectable()
export class ResourcesHealthIndicator {
  private readonly streamCheck = new ShortLivedCache(RESOURCES_CACHE_MS, () =>
    this.describeStream(),
  );
  private readonly tablesCheck = new ShortLivedCache(RESOURCES_CACHE_MS, () =>
    this.describeTables(),
  );

  constructor(
    private readonly health: HealthIndicatorService,
    @Inject(KINESIS_CLIENT) private readonly kinesis: KinesisClient,
    @Inject(DYNAMODB_CLIENT) private readonly dynamoDb: DynamoDBClient,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly consumer: StreamConsumerService,
  ) {}

  async stream() {
    const { up, data } = await this.streamCheck.get();
    const indicator = this.health.check('stream');
    return up ? indicator.up(data) : indicator.down(data);
  }

  async tables() {
    const { up, data } = await this.tablesCheck.get();
    const indicator = this.health.check('tables');
    return up ? indicator.up(data) : indicator.down(data);
  }

  private async describeStream(): Promise<Checked> {
    const name = this.config.stream.name;
    try {
      const { StreamDescriptionSummary: s } = await this.kinesis.send(
        new DescribeStreamSummaryCommand({ StreamName: name }),
        { abortSignal: AbortSignal.timeout(TIMEOUT_MS) },
      );
      return {
        up: s?.StreamStatus === 'ACTIVE' || s?.StreamStatus === 'UPDATING',
        data: { name, streamStatus: s?.StreamStatus, openShards: s?.OpenShardCount },
      };
    } catch (error) {
      return { up: false, data: { name, error: errorName(error) } };
    }
  }

  private async describeTables(): Promise<Checked> {
    const results = await Promise.all(
      Object.values(this.config.tables).map(async (name) => {
        try {
          const { Table } = await this.dynamoDb.send(
            new DescribeTableCommand({ TableName: name }),
            {
              abortSignal: AbortSignal.timeout(TIMEOUT_MS),
            },
          );
          return [name, Table?.TableStatus ?? 'UNKNOWN'] as const;
        } catch (error) {
          return [name, errorName(error)] as const;
        }
      }),
    );
    return {
      up: results.every(([, status]) => status === 'ACTIVE'),
      data: Object.fromEntries(results),
    };
  }

  /**
   * Up while the consumer runs, unless every shard it holds has been stalled on a failing
   * dependency for longer than CONSUMER_STALL_UNREADY_MS.
   */
  consumerState() {
    const indicator = this.health.check('consumer');
    const status = this.consumer.status();
    const now = Date.now();
    const stalledFor = (s: PollerStatus) => (s.stall ? now - s.stall.since : 0);
    const shards = Object.fromEntries(
      status.shards.map((s) => [
        s.shardId,
        {
          state: s.state,
          millis_behind_latest: s.millisBehindLatest ?? null,
          last_read_at: s.lastReadAt ?? null,
          ...(s.stall
            ? {
                stalled_ms: stalledFor(s),
                stalled_on: s.stall.on,
                attempts: s.stall.attempts,
                last_error: s.stall.lastError,
              }
            : {}),
        },
      ]),
    );
    const data = {
      state: status.state,
      owner: status.owner,
      live_instances: status.liveInstances,
      leases_held: status.shards.length,
      shards,
      quarantined: Object.fromEntries(
        status.quarantined.map((q) => [
          q.shardId,
          { reason: q.reason, failures: q.failures, retry_in_ms: Math.round(q.retryInMs) },
        ]),
      ),
      lease_owners: Object.fromEntries(status.leases.map((l) => [l.shardId, l.owner])),
    };
    const allStalled =
      status.shards.length > 0 &&
      status.shards.every((s) => stalledFor(s) > this.config.consumer.stallUnreadyMs);
    return status.state === 'stopped' || allStalled ? indicator.down(data) : indicator.up(data);
  }
}
