import { Logger } from '@nestjs/common';
import { gunzipSync, gzipSync } from 'node:zlib';
import { Measurement } from '../domain/measurement';
import { MetricsService } from '../metrics/metrics.service';
import type { ShardAggregation } from '../stream-consumer/shard-poller';
import { AggregatesRepository } from './aggregates.repository';
import { Aggregate, AggregationSettings, WindowAggregator } from './window-aggregator';

export interface StateSource {
  loadState(): Promise<Buffer | undefined>;
}

/** One shard's windows: the pure WindowAggregator, its sink, and its gzip-compressed snapshot. */
export class DynamoDbShardAggregation implements ShardAggregation {
  private readonly logger = new Logger(DynamoDbShardAggregation.name);
  private readonly aggregator: WindowAggregator;

  constructor(
    private readonly shardId: string,
    settings: AggregationSettings & { flushMs: number },
    private readonly state: StateSource,
    private readonly sink: AggregatesRepository,
    private readonly metrics: MetricsService,
    private readonly chunkBytes: number,
  ) {
    this.aggregator = new WindowAggregator(settings);
    this.flushMs = settings.flushMs;
  }

  readonly flushMs: number;

  async restore(): Promise<void> {
    const saved = await this.state.loadState();
    if (saved) this.aggregator.restore(JSON.parse(gunzipSync(saved).toString('utf8')));
  }

  add(measurements: Measurement[], now: number): void {
    for (const m of measurements) {
      const { late } = this.aggregator.add(m, now);
      if (late.length > 0) {
        this.metrics.lateRecords.inc();
        this.logger.warn(
          `${this.shardId}: late record ${m.message_id} (${m.city_id} ${m.timestamp}) after its ${late.join(', ')} window was final: stored, not aggregated`,
        );
      }
    }
  }

  collect(now: number, caughtUp: boolean, flushPartials: boolean): Aggregate[] {
    return this.aggregator.collect(now, caughtUp, flushPartials);
  }

  async write(aggregates: Aggregate[]): Promise<void> {
    await this.sink.write(aggregates);
    const now = Date.now();
    for (const a of aggregates) {
      if (a.final)
        this.metrics.windowFinalisationDelay.observe((now - Date.parse(a.window_end)) / 1000);
    }
  }

  snapshot(): Buffer[] {
    const packed = gzipSync(JSON.stringify(this.aggregator.snapshot()));
    const chunks: Buffer[] = [];
    for (let i = 0; i < packed.length; i += this.chunkBytes)
      chunks.push(packed.subarray(i, i + this.chunkBytes));
    return chunks.length > 0 ? chunks : [packed];
  }
}
