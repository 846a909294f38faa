import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DescribeStreamSummaryCommand, KinesisClient } from '@aws-sdk/client-kinesis';
import { Inject, Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { AppConfig } from '../config/app.config';
import { APP_CONFIG } from '../config/config.tokens';
import { DYNAMODB_CLIENT, KINESIS_CLIENT } from '../infra/aws/aws.tokens';
import { PollerStatus } from '../stream-consumer/shard-poller';
import { StreamConsumerService } from '../stream-consumer/stream-consumer.service';

const TIMEOUT_MS = 2000;
const errorName = (error: unknown) => (error instanceof Error ? error.name : 'Error');

/** Readiness: the stream is ACTIVE, the tables answer, the consumer holds or is acquiring leases. */
@Injectable()
export class ResourcesHealthIndicator {
  constructor(
    private readonly health: HealthIndicatorService,
    @Inject(KINESIS_CLIENT) private readonly kinesis: KinesisClient,
    @Inject(DYNAMODB_CLIENT) private readonly dynamoDb: DynamoDBClient,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly consumer: StreamConsumerService,
  ) {}

  async stream() {
    const indicator = this.health.check('stream');
    try {
      const { StreamDescriptionSummary: s } = await this.kinesis.send(
        new DescribeStreamSummaryCommand({ StreamName: this.config.stream.name }),
        { abortSignal: AbortSignal.timeout(TIMEOUT_MS) },
      );
      const data = {
        name: this.config.stream.name,
        streamStatus: s?.StreamStatus,
        openShards: s?.OpenShardCount,
      };
      return s?.StreamStatus === 'ACTIVE' || s?.StreamStatus === 'UPDATING'
        ? indicator.up(data)
        : indicator.down(data);
    } catch (error) {
      return indicator.down({ name: this.config.stream.name, error: errorName(error) });
    }
  }

  async tables() {
    const indicator = this.health.check('tables');
    const names = Object.values(this.config.tables);
    const results = await Promise.all(
      names.map(async (name) => {
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
    const data = Object.fromEntries(results);
    return results.every(([, status]) => status === 'ACTIVE')
      ? indicator.up(data)
      : indicator.down(data);
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
