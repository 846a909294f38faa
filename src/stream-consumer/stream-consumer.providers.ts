import { KinesisClient } from '@aws-sdk/client-kinesis';
import { Logger, Provider } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { WindowedShardAggregation } from '../aggregation/shard-aggregation';
import { AppConfig } from '../config/app.config';
import { APP_CONFIG } from '../config/config.tokens';
import { Measurement } from '../domain/measurement';
import { KINESIS_CLIENT } from '../infra/aws/aws.tokens';
import { KinesisProducerService } from '../ingestion/kinesis-producer.service';
import { MetricsService } from '../metrics/metrics.service';
import { SpeedLayerRepository } from '../speed-layer/speed-layer.repository';
import { DeadLetter, DeadLetterRepository } from './dead-letter.repository';
import { KinesisShardReader } from './kinesis-shard-reader';
import { LeaseCoordinator, Worker } from './lease-coordinator';
import { hashRangeOf, Lease, LeaseRepository, STATE_CHUNK_BYTES } from './lease.repository';
import { CommitStore, ShardCommitRepository } from './shard-commit.repository';
import { ShardCommitter } from './shard-committer';
import { BatchSink, DEFAULT_TIMING, PollerTiming, ShardPoller } from './shard-poller';
import { ShardRetrier } from './shard-retrier';
import {
  BATCH_SINK,
  CONSUMER_OWNER,
  LEASE_COORDINATOR,
  SHARD_READER,
  SHARD_WORKER_FACTORY,
} from './stream-consumer.tokens';

const DISCOVERY_INTERVAL_MS = 10_000;
const RETRY_BASE_MS = 100;
/** This process's idle beat, as a fraction of the idle interval (see PollerTiming.idlePhaseMs). */
const IDLE_PHASE = Math.random();

export type ShardWorkerFactory = (lease: Lease) => Worker;

/** Measurements go to the speed layer, poison records to the DLQ, each with its metrics. */
export function createBatchSink(
  speedLayer: SpeedLayerRepository,
  deadLetters: DeadLetterRepository,
  metrics: MetricsService,
): BatchSink {
  return {
    store: async (measurements: Measurement[], writer?: string) => {
      await speedLayer.write(measurements, writer);
      const now = Date.now();
      for (const m of measurements) {
        metrics.endToEnd.observe((now - Date.parse(m.ingestion_timestamp)) / 1000);
      }
      metrics.recordsConsumed.inc({ outcome: 'stored' }, measurements.length);
    },
    deadLetter: async (letters: DeadLetter[]) => {
      await deadLetters.write(letters);
      for (const l of letters) metrics.dlqEntries.inc({ reason: l.reason });
      metrics.recordsConsumed.inc({ outcome: 'dead_lettered' }, letters.length);
    },
    deaggregated: (count: number) => metrics.kplUserRecords.inc(count),
  };
}

/** The poller's pace: `readsPerSecond` GetRecords calls a second, one per idle interval once idle. */
export function timingFor(consumer: AppConfig['consumer']): PollerTiming {
  return {
    ...DEFAULT_TIMING,
    minPollIntervalMs: Math.ceil(1000 / consumer.readsPerSecond),
    idleDelayMs: consumer.idleReadIntervalMs,
    idlePhaseMs: IDLE_PHASE * consumer.idleReadIntervalMs,
  };
}

/** One shard's poller with its window aggregation, its commit path and its retry policy. */
export function createShardWorkerFactory(
  config: AppConfig,
  reader: KinesisShardReader,
  sink: BatchSink,
  leases: LeaseRepository,
  commits: ShardCommitRepository,
  speedLayer: SpeedLayerRepository,
  metrics: MetricsService,
  producer: KinesisProducerService,
): ShardWorkerFactory {
  const logger = new Logger(ShardPoller.name);
  // Each try of a commit step is timed, failed ones too: where a slow commit spends its time.
  const timed = async <T>(step: string, action: () => Promise<T>): Promise<T> => {
    const end = metrics.commitStep.startTimer({ step });
    try {
      return await action();
    } finally {
      end();
    }
  };
  const store: CommitStore = {
    commit: (lease, plan, checkpoint) =>
      timed('transaction', () => commits.commit(lease, plan, checkpoint)),
  };
  // Records this process just put on a shard: its poller reads them now, not at the idle pace.
  // One subscription for all shards, so an append costs one lookup whatever the shard count.
  const running = new Map<string, ShardPoller>();
  producer.appended$.subscribe((shardId) => running.get(shardId)?.wake());
  return (lease) => {
    // The shard's cities: stored through its sink, written by its own commits.
    const shardSink: BatchSink = {
      ...sink,
      store: (measurements) => sink.store(measurements, lease.leaseKey),
    };
    const latest = {
      flush: () => timed('latest', () => speedLayer.flushLatest(lease.leaseKey)),
    };
    const aggregation = new WindowedShardAggregation(
      lease.leaseKey,
      config.aggregation,
      {
        loadState: () => leases.loadState(lease),
        loadParentStates: () => leases.loadParentStates(lease),
        hashRange: hashRangeOf(lease),
      },
      metrics,
      STATE_CHUNK_BYTES,
    );
    const poller = new ShardPoller(
      lease,
      reader,
      shardSink,
      aggregation,
      new ShardCommitter(lease, aggregation, store, latest),
      (signal) =>
        new ShardRetrier(
          lease.leaseKey,
          { baseMs: RETRY_BASE_MS, capMs: config.consumer.backoffMaxMs },
          signal,
          {
            warn: (message) => logger.warn(message),
            onRetry: (operation) => metrics.consumerRetries.inc({ operation }),
          },
        ),
      logger,
      timingFor(config.consumer),
    );
    running.set(lease.leaseKey, poller);
    const done = poller
      .run()
      .catch((error: Error) =>
        logger.error(`${lease.leaseKey} failed: ${error.stack ?? error.message}`),
      )
      .finally(() => {
        // A poller of a retaken lease may have replaced this one meanwhile.
        if (running.get(lease.leaseKey) === poller) {
          running.delete(lease.leaseKey);
          // What it noted and did not write, its next owner reads again and writes.
          speedLayer.dropLatest(lease.leaseKey);
        }
      });
    return { stop: () => poller.stop(), done, status: () => poller.status() };
  };
}

export function createLeaseCoordinator(
  config: AppConfig,
  owner: string,
  leases: LeaseRepository,
  reader: KinesisShardReader,
  startWorker: ShardWorkerFactory,
  metrics: MetricsService,
): LeaseCoordinator {
  return new LeaseCoordinator(leases, {
    owner,
    failoverMs: config.consumer.leaseFailoverMs,
    discoveryIntervalMs: DISCOVERY_INTERVAL_MS,
    log: new Logger(LeaseCoordinator.name),
    onRenewalFailure: () => metrics.leaseRenewalFailures.inc(),
    listShards: async () =>
      (await reader.listShards()).map((s) => ({
        shardId: s.ShardId!,
        hashRange: s.HashKeyRange
          ? {
              startingHashKey: s.HashKeyRange.StartingHashKey!,
              endingHashKey: s.HashKeyRange.EndingHashKey!,
            }
          : undefined,
        parentShardIds: [s.ParentShardId, s.AdjacentParentShardId].filter((p): p is string => !!p),
      })),
    startWorker,
  });
}

export const streamConsumerProviders: Provider[] = [
  {
    provide: CONSUMER_OWNER,
    useFactory: () => `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`,
  },
  {
    provide: SHARD_READER,
    inject: [KINESIS_CLIENT, APP_CONFIG],
    useFactory: (kinesis: KinesisClient, config: AppConfig) =>
      new KinesisShardReader(kinesis, config.stream.name),
  },
  {
    provide: BATCH_SINK,
    inject: [SpeedLayerRepository, DeadLetterRepository, MetricsService],
    useFactory: createBatchSink,
  },
  {
    provide: SHARD_WORKER_FACTORY,
    inject: [
      APP_CONFIG,
      SHARD_READER,
      BATCH_SINK,
      LeaseRepository,
      ShardCommitRepository,
      SpeedLayerRepository,
      MetricsService,
      KinesisProducerService,
    ],
    useFactory: createShardWorkerFactory,
  },
  {
    provide: LEASE_COORDINATOR,
    inject: [
      APP_CONFIG,
      CONSUMER_OWNER,
      LeaseRepository,
      SHARD_READER,
      SHARD_WORKER_FACTORY,
      MetricsService,
    ],
    useFactory: createLeaseCoordinator,
  },
];
