import { Injectable, Logger } from '@nestjs/common';
import { ResourcesHealthIndicator } from '../health/resources.health';
import { MetricsService } from '../metrics/metrics.service';
import { DeadLetterCount, DeadLetterRepository } from '../stream-consumer/dead-letter.repository';
import { ConsumerStatus, StreamConsumerService } from '../stream-consumer/stream-consumer.service';

/** Rates are averaged over this much of the recent past, so a one-second view does not flicker. */
const RATE_WINDOW_MS = 5000;
/** The DLQ is counted again when this instance dead-letters a record, else at most this often. */
const DLQ_RECOUNT_MS = 10_000;
/** Counting stops here (a flooded queue costs a bounded read); the page says "or more". */
const DLQ_COUNT_MAX = 10_000;

export interface ShardFigures {
  shard_id: string;
  owner: string | null;
  /** True when this instance holds the lease (then state and lag are known here). */
  held_here: boolean;
  state: string;
  millis_behind_latest: number | null;
  last_read_at: string | null;
}

export interface PipelineFigures {
  at: string;
  instance: string;
  ready: boolean;
  checks: Record<'stream' | 'tables' | 'consumer', 'up' | 'down'>;
  rates: { ingested_per_s: number; stored_per_s: number; dead_lettered_per_s: number };
  consumer: { state: string; live_instances: number };
  shards: ShardFigures[];
  dlq: { counts: DeadLetterCount[]; pending: number; capped: boolean; counted_at: string | null };
}

interface Sample {
  t: number;
  ingested: number;
  stored: number;
  deadLettered: number;
}

const sum = (values: { value: number; labels: Record<string, unknown> }[], outcome?: string) =>
  values
    .filter((v) => outcome === undefined || v.labels.outcome === outcome)
    .reduce((total, v) => total + v.value, 0);

/**
 * The pipeline as the dashboard shows it: this instance's ingest and consume rates, every
 * shard's lease with its owner (and, for the shards held here, state and lag), the DLQ by reason
 * and status, and readiness. Meant to be sampled by one caller once a second, whatever the number
 * of viewers.
 */
@Injectable()
export class PipelineMonitor {
  private readonly logger = new Logger(PipelineMonitor.name);
  private readonly samples: Sample[] = [];
  private dlq: PipelineFigures['dlq'] = { counts: [], pending: 0, capped: false, counted_at: null };
  private dlqCountedAt = Number.NEGATIVE_INFINITY;
  private dlqWrittenSeen = -1;
  private counting?: Promise<void>;

  constructor(
    private readonly metrics: MetricsService,
    private readonly consumer: StreamConsumerService,
    private readonly resources: ResourcesHealthIndicator,
    private readonly deadLetters: DeadLetterRepository,
  ) {}

  async sample(): Promise<PipelineFigures> {
    const now = Date.now();
    const [ingested, consumed, dlqWritten] = await Promise.all([
      this.metrics.recordsIngested.get(),
      this.metrics.recordsConsumed.get(),
      this.metrics.dlqEntries.get(),
    ]);
    this.samples.push({
      t: now,
      ingested: sum(ingested.values),
      stored: sum(consumed.values, 'stored'),
      deadLettered: sum(consumed.values, 'dead_lettered'),
    });
    while (this.samples.length > 2 && now - this.samples[1].t >= RATE_WINDOW_MS)
      this.samples.shift();
    this.recountDlqIfDue(now, sum(dlqWritten.values));
    const [stream, tables] = await Promise.all([
      this.resources.stream().catch(() => ({ stream: { status: 'down' } })),
      this.resources.tables().catch(() => ({ tables: { status: 'down' } })),
    ]);
    const consumerCheck = this.resources.consumerState().consumer.status;
    const checks = {
      stream: stream.stream.status,
      tables: tables.tables.status,
      consumer: consumerCheck,
    } as PipelineFigures['checks'];
    const status = this.consumer.status();
    return {
      at: new Date(now).toISOString(),
      instance: status.owner,
      ready: Object.values(checks).every((c) => c === 'up'),
      checks,
      rates: this.rates(),
      consumer: { state: status.state, live_instances: status.liveInstances },
      shards: this.shards(status),
      dlq: this.dlq,
    };
  }

  private rates(): PipelineFigures['rates'] {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    const seconds = (last.t - first.t) / 1000;
    const rate = (field: keyof Omit<Sample, 't'>) =>
      seconds > 0 ? Math.round(((last[field] - first[field]) / seconds) * 10) / 10 : 0;
    return {
      ingested_per_s: rate('ingested'),
      stored_per_s: rate('stored'),
      dead_lettered_per_s: rate('deadLettered'),
    };
  }

  private shards(status: ConsumerStatus): ShardFigures[] {
    const figures = new Map<string, ShardFigures>();
    for (const lease of status.leases) {
      figures.set(lease.shardId, {
        shard_id: lease.shardId,
        owner: lease.owner,
        held_here: false,
        state: lease.checkpoint === 'SHARD_END' ? 'ended' : lease.owner ? 'leased' : 'unowned',
        millis_behind_latest: null,
        last_read_at: null,
      });
    }
    for (const poller of status.shards) {
      figures.set(poller.shardId, {
        shard_id: poller.shardId,
        owner: status.owner,
        held_here: true,
        state: poller.state,
        millis_behind_latest: poller.millisBehindLatest ?? null,
        last_read_at: poller.lastReadAt ?? null,
      });
    }
    return [...figures.values()].sort((a, b) => a.shard_id.localeCompare(b.shard_id));
  }

  /** In the background: a slow DLQ table never delays the figures, which carry the last count. */
  private recountDlqIfDue(now: number, written: number): void {
    const due = written !== this.dlqWrittenSeen || now - this.dlqCountedAt >= DLQ_RECOUNT_MS;
    if (!due || this.counting) return;
    this.dlqWrittenSeen = written;
    this.dlqCountedAt = now;
    this.counting = this.deadLetters
      .count(DLQ_COUNT_MAX)
      .then(({ counts, capped }) => {
        this.dlq = {
          counts: counts.sort((a, b) => a.reason.localeCompare(b.reason)),
          pending: counts.filter((c) => c.status === 'pending').reduce((n, c) => n + c.count, 0),
          capped,
          counted_at: new Date().toISOString(),
        };
      })
      .catch((error: Error) => this.logger.warn(`counting the DLQ failed: ${error.name}`))
      .finally(() => (this.counting = undefined));
  }
}
