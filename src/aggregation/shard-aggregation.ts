import { Logger } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { Measurement } from '../domain/measurement';
import { MetricsService } from '../metrics/metrics.service';
import type { ShardAggregation } from '../stream-consumer/shard-poller';
import { AggregatesRepository } from './aggregates.repository';
import { Aggregate, AggregationSettings, WindowAggregator } from './window-aggregator';

/** What one TransactWriteItems call (4 MB) can carry next to the lease update. */
export const MAX_STATE_BYTES = 3.8 * 1024 * 1024;

export interface StateSource {
  loadState(): Promise<Buffer | undefined>;
  /** For a child shard: the states its parents left at SHARD_END. */
  loadParentStates(): Promise<Buffer[]>;
  /** The shard's hash key range, to keep only its own cities from a parent's state. */
  hashRange?: { start: bigint; end: bigint };
}

/** Kinesis maps a partition key to the 128-bit MD5 of its UTF-8 bytes. */
export const partitionHash = (key: string) =>
  BigInt(`0x${createHash('md5').update(key).digest('hex')}`);

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

  /**
   * Its own state when it has one; else, for a child of a split or merge, the open windows its
   * parents left for the cities it now holds, so no window loses the parents' records.
   */
  async restore(): Promise<void> {
    const unpack = (b: Buffer) => JSON.parse(gunzipSync(b).toString('utf8')) as unknown;
    const saved = await this.state.loadState();
    if (saved) return this.aggregator.restore(unpack(saved), Date.now());
    const parents = await this.state.loadParentStates();
    if (parents.length === 0) return;
    const range = this.state.hashRange;
    this.aggregator.adopt(
      parents.map(unpack),
      (cityId) => {
        if (!range) return true;
        const hash = partitionHash(cityId);
        return hash >= range.start && hash <= range.end;
      },
      Date.now(),
    );
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
    await this.sink.write(aggregates, this.aggregator.partialsCannotMeetFinals);
    this.aggregator.confirm(aggregates);
    const now = Date.now();
    for (const a of aggregates) {
      if (a.final)
        this.metrics.windowFinalisationDelay.observe((now - Date.parse(a.window_end)) / 1000);
    }
  }

  snapshot(): Buffer[] {
    let packed = gzipSync(JSON.stringify(this.aggregator.snapshot()));
    if (packed.length > MAX_STATE_BYTES) {
      // A transaction holds at most 4 MB: rather than stall the shard, save the sums without the
      // message ids, and say so. Duplicates that arrive after a restart could then count twice.
      this.metrics.oversizedState.inc();
      this.logger.error(
        `${this.shardId}: window state is ${(packed.length / 1048576).toFixed(1)} MB, above the ${MAX_STATE_BYTES / 1048576} MB ` +
          'a checkpoint can hold; saved without message ids. Add shards or shorten AGGREGATION_WINDOWS.',
      );
      packed = gzipSync(JSON.stringify(this.aggregator.snapshot({ withoutIds: true })));
    }
    const chunks: Buffer[] = [];
    for (let i = 0; i < packed.length; i += this.chunkBytes)
      chunks.push(packed.subarray(i, i + this.chunkBytes));
    return chunks.length > 0 ? chunks : [packed];
  }
}
