import { ChildProcess } from 'node:child_process';
import { CountingProxy } from './counting-proxy';
import {
  cpuSeconds,
  LISTENING,
  log,
  metric,
  rssMb,
  sleep,
  start,
  stop,
  waitForLeases,
} from './bench-processes';
import { runLoad } from './load-generator';
import { ScalingResult, scalingCases } from './scaling-report';

export interface ScalingOptions {
  /** The environment of a service instance against the emulators (BACKEND=aws, endpoints…). */
  serviceEnv: Record<string, string>;
  dynamoDbUrl: string;
  prefix: string;
  rate: number;
  seconds: number;
  idleSeconds: number;
  /** The rows of the table to run, from 1 (all when not given). */
  rows?: number[];
  track: (child: ChildProcess) => void;
}

async function drained(url: string, maxMs: number): Promise<void> {
  const deadline = Date.now() + maxMs;
  const backlog = async () =>
    (await metric(url, 'aq_records_ingested_total')) -
    (await metric(url, 'aq_records_consumed_total'));
  while (Date.now() < deadline && (await backlog()) > 0) await sleep(500);
}

/**
 * For each case, a fresh instance whose DynamoDB calls go through a counting proxy: its CPU and
 * RSS and the calls it makes while `rate`/s are offered and consumed, then the read units its
 * lease table takes while idle.
 */
export async function runScaling(options: ScalingOptions): Promise<ScalingResult[]> {
  const proxy = new CountingProxy(new URL(options.dynamoDbUrl));
  const proxyUrl = await proxy.listen();
  const results: ScalingResult[] = [];
  try {
    for (const [i, c] of scalingCases().entries()) {
      if (options.rows && !options.rows.includes(i + 1)) continue;
      const name = `${options.prefix}-scale${i}`;
      const leases = `${name}-leases`;
      const instance = await start(
        'main.js',
        {
          ...options.serviceEnv,
          AWS_ENDPOINT_URL_DYNAMODB: proxyUrl,
          KINESIS_STREAM_NAME: name,
          KINESIS_SHARD_COUNT: String(c.shards),
          DYNAMODB_REALTIME_TABLE: `${name}-realtime`,
          DYNAMODB_AGGREGATES_TABLE: `${name}-aggregates`,
          DYNAMODB_DLQ_TABLE: `${name}-dlq`,
          DYNAMODB_LEASE_TABLE: leases,
          DYNAMODB_STATE_TABLE: `${name}-state`,
          AGGREGATION_WINDOWS: c.windows,
        },
        LISTENING,
      );
      options.track(instance.child);
      const url = instance.match[1];
      const pid = instance.child.pid;
      try {
        const held = await waitForLeases(url, c.shards, 120_000);
        if (held < c.shards) log(`scaling: only ${held} of ${c.shards} leases taken`);
        const load = {
          target: url,
          cities: c.cities,
          batch: 50,
          duplicates: 0,
          outOfOrder: 0,
          late: 0,
        };
        await runLoad({ ...load, rate: Math.ceil(options.rate / 4), durationS: 5, seed: 3 });
        await drained(url, 30_000);
        proxy.reset();
        const cpu0 = cpuSeconds(pid);
        const consumed0 = await metric(url, 'aq_records_consumed_total');
        await runLoad({ ...load, rate: options.rate, durationS: options.seconds, seed: 5 });
        await drained(url, 60_000);
        const consumed = (await metric(url, 'aq_records_consumed_total')) - consumed0;
        const serviceCpuS = cpuSeconds(pid) - cpu0;
        const calls = Object.fromEntries(proxy.calls);
        const rss = rssMb(pid);
        // Idle: nothing to read; the lease cycles and the empty reads go on.
        await sleep(3_000);
        proxy.reset(leases);
        await sleep(options.idleSeconds * 1000);
        const result: ScalingResult = {
          ...c,
          rate: options.rate,
          seconds: options.seconds,
          consumed,
          serviceCpuS,
          rssMb: rss,
          calls,
          idleSeconds: options.idleSeconds,
          idleLeaseReadUnits: proxy.readUnits,
        };
        results.push(result);
        log(
          `scaling ${c.shards} shards, ${c.cities} cities, ${c.windows}: ${consumed} consumed, ${((serviceCpuS * 1e6) / consumed).toFixed(0)} µs/measurement, ${proxy.readUnits} lease read units in ${options.idleSeconds} s idle`,
        );
      } finally {
        await stop(instance.child);
      }
    }
  } finally {
    await proxy.close();
  }
  return results;
}
