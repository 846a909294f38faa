import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnModuleDestroy,
} from '@nestjs/common';
import { AppConfig } from '../config/app.config';
import { APP_CONFIG } from '../config/config.tokens';
import { MetricsService } from '../metrics/metrics.service';
import { LeaseCoordinator, LeaseView, Quarantine } from './lease-coordinator';
import { PollerStatus } from './shard-poller';
import { CONSUMER_OWNER, LEASE_COORDINATOR } from './stream-consumer.tokens';

export interface ConsumerStatus {
  enabled: boolean;
  owner: string;
  state: 'disabled' | 'running' | 'stopped';
  liveInstances: number;
  shards: PollerStatus[];
  leases: LeaseView[];
  quarantined: Quarantine[];
}

/**
 * Consumes the stream in the background: a LeaseCoordinator decides which shards this instance
 * reads, and one ShardPoller per held lease reads it. Stopping waits for every batch in flight to
 * be stored and committed, then releases the leases so other instances take them at once.
 */
@Injectable()
export class StreamConsumerService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(StreamConsumerService.name);
  private state: ConsumerStatus['state'] = 'disabled';

  constructor(
    @Inject(LEASE_COORDINATOR) private readonly coordinator: LeaseCoordinator,
    @Inject(CONSUMER_OWNER) private readonly owner: string,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    metrics: MetricsService,
  ) {
    metrics.addCollector(() => {
      const { held, quarantined } = this.coordinator.status();
      metrics.leasesHeld.set(held.length);
      metrics.shardsQuarantined.set(quarantined.length);
      metrics.iteratorAge.reset();
      metrics.shardStalled.reset();
      const now = Date.now();
      for (const shard of held) {
        if (shard.millisBehindLatest !== undefined)
          metrics.iteratorAge.set({ shard: shard.shardId }, shard.millisBehindLatest / 1000);
        metrics.shardStalled.set(
          { shard: shard.shardId },
          shard.stall ? (now - shard.stall.since) / 1000 : 0,
        );
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
    const { liveInstances, held, leases, quarantined } = this.coordinator.status();
    return {
      enabled: this.config.consumer.enabled,
      owner: this.owner,
      state: this.state,
      liveInstances,
      shards: held,
      leases,
      quarantined,
    };
  }

  async onModuleDestroy(): Promise<void> {
    if (this.state !== 'running') return;
    const held = this.coordinator.status().held.length;
    await this.coordinator.stop();
    this.state = 'stopped';
    this.logger.log(`stopped ${held} shard poller(s) after their last commit; leases released`);
  }
}
