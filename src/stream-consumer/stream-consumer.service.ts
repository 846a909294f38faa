import { KinesisClient } from '@aws-sdk/client-kinesis';
import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnModuleDestroy,
} from '@nestjs/common';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { AppConfig } from '../config/app.config';
import { APP_CONFIG } from '../config/config.tokens';
import { KINESIS_CLIENT } from '../infra/aws/aws.tokens';
import { SpeedLayerRepository } from '../speed-layer/speed-layer.repository';
import { DeadLetterRepository } from './dead-letter.repository';
import { KinesisShardReader } from './kinesis-shard-reader';
import { LeaseRepository } from './lease.repository';
import { PollerStatus, ShardPoller } from './shard-poller';

export interface ConsumerStatus {
  enabled: boolean;
  owner: string;
  state: 'disabled' | 'starting' | 'running' | 'failed' | 'stopped';
  shards: PollerStatus[];
}

const START_RETRY_MS = 2000;

/**
 * Runs one ShardPoller per shard of the stream in the background. Stopping waits for every
 * batch in flight to be stored and checkpointed, then releases the leases.
 */
@Injectable()
export class StreamConsumerService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(StreamConsumerService.name);
  private readonly owner = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private readonly reader: KinesisShardReader;
  private readonly pollers = new Map<string, { poller: ShardPoller; done: Promise<void> }>();
  private state: ConsumerStatus['state'] = 'disabled';
  private stopping = false;
  private startTimer?: NodeJS.Timeout;

  constructor(
    @Inject(KINESIS_CLIENT) kinesis: KinesisClient,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly leases: LeaseRepository,
    private readonly speedLayer: SpeedLayerRepository,
    private readonly deadLetters: DeadLetterRepository,
  ) {
    this.reader = new KinesisShardReader(kinesis, config.stream.name);
  }

  onApplicationBootstrap(): void {
    if (!this.config.consumer.enabled) return;
    this.state = 'starting';
    void this.start();
  }

  status(): ConsumerStatus {
    return {
      enabled: this.config.consumer.enabled,
      owner: this.owner,
      state: this.state,
      shards: [...this.pollers.values()].map(({ poller }) => poller.status()),
    };
  }

  async onModuleDestroy(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.startTimer);
    for (const { poller } of this.pollers.values()) poller.stop();
    await Promise.allSettled([...this.pollers.values()].map(({ done }) => done));
    if (this.state === 'disabled') return;
    this.state = 'stopped';
    this.logger.log(
      `stopped ${this.pollers.size} shard poller(s) after their last checkpoint; leases released`,
    );
  }

  private async start(): Promise<void> {
    try {
      const shards = await this.reader.listShards();
      for (const shard of shards) {
        if (this.stopping) return;
        if (this.pollers.has(shard.ShardId!)) continue;
        const parents = [shard.ParentShardId, shard.AdjacentParentShardId].filter(
          (p): p is string => !!p,
        );
        const lease = await this.leases.take(shard.ShardId!, this.owner, parents);
        const poller = new ShardPoller(
          lease,
          this.reader,
          {
            store: (measurements) => this.speedLayer.write(measurements),
            deadLetter: (letters) => this.deadLetters.write(letters),
          },
          this.leases,
          { warn: (m) => this.logger.warn(m), error: (m) => this.logger.error(m) },
        );
        const done = poller
          .run()
          .catch((error: Error) =>
            this.logger.error(`${poller.shardId} stopped: ${error.stack ?? error.message}`),
          )
          .finally(() => this.leases.release(lease).catch(() => undefined));
        this.pollers.set(poller.shardId, { poller, done });
      }
      this.state = 'running';
      this.logger.log(
        `consuming ${this.pollers.size} shard(s) of ${this.config.stream.name} as ${this.owner}`,
      );
    } catch (error) {
      this.state = 'failed';
      this.logger.error(`consumer start failed, retrying: ${(error as Error).message}`);
      if (!this.stopping) this.startTimer = setTimeout(() => void this.start(), START_RETRY_MS);
    }
  }
}
