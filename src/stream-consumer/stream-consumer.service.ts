import { KinesisClient } from '@aws-sdk/client-kinesis';
import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnModuleDestroy,
} from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { AppConfig } from '../config/app.config';
import { APP_CONFIG } from '../config/config.tokens';
import { KINESIS_CLIENT } from '../infra/aws/aws.tokens';
import { SpeedLayerRepository } from '../speed-layer/speed-layer.repository';
import { AggregatesRepository } from '../aggregation/aggregates.repository';
import { DynamoDbShardAggregation } from '../aggregation/shard-aggregation';
import { Measurement } from '../domain/measurement';
import { MetricsService } from '../metrics/metrics.service';
import { DeadLetter, DeadLetterRepository } from './dead-letter.repository';
import { KinesisShardReader } from './kinesis-shard-reader';
import { LeaseCoordinator, LeaseView } from './lease-coordinator';
import { LeaseRepository, STATE_CHUNK_BYTES } from './lease.repository';
import { DEFAULT_TIMING, PollerStatus, ShardPoller } from './shard-poller';

export interface ConsumerStatus {
  enabled: boolean;
  owner: string;
  state: 'disabled' | 'running' | 'stopped';
  liveInstances: number;
  shards: PollerStatus[];
  leases: LeaseView[];
}

const DISCOVERY_INTERVAL_MS = 10_000;

/**
 * Consumes the stream in the background: a LeaseCoordinator decides which shards this instance
 * reads, and one ShardPoller per held lease reads it. Stopping waits for every batch in flight to
 * be stored and checkpointed, then releases the leases so other instances take them at once.
 */
@Injectable()
export class StreamConsumerService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(StreamConsumerService.name);
  private readonly owner = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private readonly coordinator: LeaseCoordinator;
  private state: ConsumerStatus['state'] = 'disabled';

  constructor(
    @Inject(KINESIS_CLIENT) kinesis: KinesisClient,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    leases: LeaseRepository,
    speedLayer: SpeedLayerRepository,
    deadLetters: DeadLetterRepository,
    metrics: MetricsService,
    aggregates: AggregatesRepository,
  ) {
    const reader = new KinesisShardReader(kinesis, config.stream.name);
    const sink = {
      store: async (measurements: Measurement[]) => {
        await speedLayer.write(measurements);
        const now = Date.now();
        for (const m of measurements) {
          metrics.endToEnd.observe((now - Date.parse(m.ingestion_timestamp)) / 1000);
        }
        metrics.recordsConsumed.inc({ outcome: 'stored' }, measurements.length);
      },
      flush: () => speedLayer.flushLatest(),
      deadLetter: async (letters: DeadLetter[]) => {
        await deadLetters.write(letters);
        for (const l of letters) metrics.dlqEntries.inc({ reason: l.reason });
        metrics.recordsConsumed.inc({ outcome: 'dead_lettered' }, letters.length);
      },
    };
    const log = {
      log: (m: string) => this.logger.log(m),
      warn: (m: string) => this.logger.warn(m),
      error: (m: string) => this.logger.error(m),
    };
    this.coordinator = new LeaseCoordinator(leases, {
      owner: this.owner,
      failoverMs: config.consumer.leaseFailoverMs,
      discoveryIntervalMs: DISCOVERY_INTERVAL_MS,
      log,
      listShards: async () =>
        (await reader.listShards()).map((s) => ({
          shardId: s.ShardId!,
          hashRange: s.HashKeyRange
            ? {
                startingHashKey: s.HashKeyRange.StartingHashKey!,
                endingHashKey: s.HashKeyRange.EndingHashKey!,
              }
            : undefined,
          parentShardIds: [s.ParentShardId, s.AdjacentParentShardId].filter(
            (p): p is string => !!p,
          ),
        })),
      startWorker: (lease, checkpointer) => {
        const aggregation = new DynamoDbShardAggregation(
          lease.leaseKey,
          config.aggregation,
          {
            loadState: () => leases.loadState(lease),
            loadParentStates: () => leases.loadParentStates(lease),
            hashRange:
              lease.startingHashKey && lease.endingHashKey
                ? { start: BigInt(lease.startingHashKey), end: BigInt(lease.endingHashKey) }
                : undefined,
          },
          aggregates,
          metrics,
          STATE_CHUNK_BYTES,
        );
        const poller = new ShardPoller(
          lease,
          reader,
          sink,
          checkpointer,
          log,
          { ...DEFAULT_TIMING, maxAttempts: config.consumer.maxAttempts },
          aggregation,
        );
        const done = poller
          .run()
          .catch((error: Error) =>
            this.logger.error(`${lease.leaseKey} failed: ${error.stack ?? error.message}`),
          );
        return { stop: () => poller.stop(), done, status: () => poller.status() };
      },
    });
    this.registerGauges(metrics);
  }

  private registerGauges(metrics: MetricsService): void {
    metrics.addCollector(() => {
      const held = this.coordinator.status().held;
      metrics.leasesHeld.set(held.length);
      metrics.iteratorAge.reset();
      for (const shard of held) {
        if (shard.millisBehindLatest !== undefined) {
          metrics.iteratorAge.set({ shard: shard.shardId }, shard.millisBehindLatest / 1000);
        }
      }
    });
  }

  onApplicationBootstrap(): void {
    if (!this.config.consumer.enabled) return;
    this.state = 'running';
    this.coordinator.start();
    this.logger.log(`consuming ${this.config.stream.name} as ${this.owner}`);
  }

  status(): ConsumerStatus {
    const { liveInstances, held, leases } = this.coordinator.status();
    return {
      enabled: this.config.consumer.enabled,
      owner: this.owner,
      state: this.state,
      liveInstances,
      shards: held,
      leases,
    };
  }

  async onModuleDestroy(): Promise<void> {
    if (this.state !== 'running') return;
    const held = this.coordinator.status().held.length;
    await this.coordinator.stop();
    this.state = 'stopped';
    this.logger.log(`stopped ${held} shard poller(s) after their last checkpoint; leases released`);
  }
}
