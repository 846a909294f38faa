import { Logger } from '@nestjs/common';
import { parseArgs } from 'node:util';
import { stateBytes, WindowedShardAggregation } from '../aggregation/shard-aggregation';
import { loadConfig } from '../config/app.config';
import { normaliseMeasurement } from '../domain/measurement';
import { parseWindowSizes } from '../domain/windows';
import { MetricsService } from '../metrics/metrics.service';
import { STATE_CHUNK_BYTES } from '../stream-consumer/lease.repository';

/**
 * `npm run state-size -- --rate R [--cities N] [--windows 5m,1h]`: what one shard's checkpoint
 * carries once its windows are full. The bench's steps are too short to fill a 5-minute window;
 * this feeds one shard's aggregation R records/s of event time, sealing a checkpoint every second,
 * first for the longest window plus the allowed lateness, then for one more such window, over
 * which it reports the window state per checkpoint (mean and peak: a full state or the changes
 * since the last one), the CPU of sealing it (JSON and gzip), and the most a new owner would read
 * (the full state and the changes after it). The other AGGREGATION_* settings come from the
 * environment, as for the service. No emulators: the aggregation alone.
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rate: { type: 'string', default: '500' },
      cities: { type: 'string', default: '100' },
      windows: { type: 'string', default: '5m' },
    },
  });
  Logger.overrideLogger(false);
  const rate = Number(values.rate);
  const cities = Number(values.cities);
  const sizes = parseWindowSizes(String(values.windows));
  const settings = { ...loadConfig(process.env).aggregation, sizes };
  const metrics = new MetricsService();
  const aggregation = new WindowedShardAggregation(
    'shardId-000000000000',
    settings,
    { loadState: () => Promise.resolve(undefined), loadParentStates: () => Promise.resolve([]) },
    metrics,
    STATE_CHUNK_BYTES,
  );
  const longest = Math.max(...sizes.map((s) => s.ms));
  const warmUp = Math.ceil((longest + settings.allowedLatenessMs) / 1000);
  const measured = Math.ceil(longest / 1000);
  const seconds = warmUp + measured;
  let now = Date.UTC(2026, 0, 1);
  let bytes = 0;
  let peak = 0;
  let cpuUs = 0;
  let fulls = 0;
  let saved = 0;
  let savedPeak = 0;
  for (let second = 0; second < seconds; second++) {
    const batch = Array.from({ length: rate }, (_, i) =>
      normaliseMeasurement(
        {
          city_id: `city-${i % cities}`,
          city_name: `City ${i % cities}`,
          timestamp: new Date(now + Math.floor((i * 1000) / rate)).toISOString(),
          pm25_value: 10 + (i % 7),
          pm10_value: 20 + (i % 5),
          temperature_c: 15,
          station_id: `station-${i}`,
        },
        new Date(now),
      ),
    );
    now += 1000;
    aggregation.add(batch, now);
    const due = aggregation.due(now, true, true);
    const before = process.cpuUsage();
    const plan = aggregation.seal(due, now);
    const used = process.cpuUsage(before);
    const size = stateBytes(plan);
    if (second >= warmUp) {
      bytes += size;
      peak = Math.max(peak, size);
      cpuUs += used.user + used.system;
      if (!plan.appendState) fulls += 1;
    }
    saved = (plan.appendState ? saved : 0) + size;
    savedPeak = Math.max(savedPeak, saved);
    aggregation.confirm(plan);
  }
  const mb = (n: number) => (n / 1_000_000).toFixed(2);
  const oversized = (await metrics.oversizedState.get()).values[0]?.value ?? 0;
  console.log(
    `${rate} records/s on one shard, ${cities} cities, windows ${sizes.map((s) => s.label).join(',')}: ` +
      `window state per checkpoint ${mb(bytes / measured)} MB mean, ${mb(peak)} MB peak (gzip); ` +
      `sealing it ${(cpuUs / measured / 1000).toFixed(0)} ms of CPU on average ` +
      `(the last ${measured} of ${seconds} commits, one a second; ${fulls} of them full states, ` +
      `the others the changes since); saved state (what a new owner reads) ${mb(savedPeak)} MB peak` +
      (oversized > 0 ? `; ${oversized} commit(s) over the limit saved without message ids` : ''),
  );
}

void main();
