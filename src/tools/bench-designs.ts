import { CreateTableCommand } from '@aws-sdk/client-dynamodb';
import { createDynamoDbClient } from '../infra/aws/aws-clients';
import { DEFAULT_TIMING } from '../stream-consumer/shard-poller';
import { SAMPLE_WAIT_MS, StepResult } from './bench-report';
import {
  cpuSeconds,
  LISTENING,
  log,
  metric,
  sleep,
  start,
  stop,
  waitForLeases,
} from './bench-processes';
import { Design, drain, Run, runStep } from './bench-steps';
import { keepRamping } from './bench-summary';
import { runLoad } from './load-generator';
import { measureVisibility, VisibilityResult } from './visibility-step';

/** The steps the summary reads (end-to-end p99 at 1,000/s, CPU and RSS at 2,000/s). */
export const SUMMARY_STEPS = [1000, 2000];

export async function serviceDesign(
  run: Run,
  warmupSeconds: number,
  visibility: { count: number; rate: number; pollMs: number },
): Promise<{ steps: StepResult[]; visibility?: VisibilityResult }> {
  const ours = await start('main.js', { ...run.aws, ...run.names('ours') }, LISTENING);
  run.track(ours.child);
  const url = ours.match[1];
  const design: Design = {
    name: 'this service',
    table: run.names('ours').DYNAMODB_REALTIME_TABLE,
    consumed: () => metric(url, 'aq_records_consumed_total'),
    ingested: () => metric(url, 'aq_records_ingested_total'),
    pids: () => ({ service: ours.child.pid }),
  };
  try {
    await waitForLeases(url, 4, 60_000);
    log(`warming up for ${warmupSeconds} s…`);
    const load = { cities: 100, batch: 20, seed: 7, duplicates: 0, outOfOrder: 0, late: 0 };
    await runLoad({ ...load, target: url, rate: 300, durationS: warmupSeconds });
    await drain(design, 30_000);
    let seen: VisibilityResult | undefined;
    if (visibility.count > 0) {
      log(`visibility: ${visibility.count} single POSTs at ${visibility.rate}/s…`);
      seen = await measureVisibility({ target: url, ...visibility, waitMs: SAMPLE_WAIT_MS });
      log(`visibility p50 ${seen.p50Ms.toFixed(0)} ms p99 ${seen.p99Ms.toFixed(0)} ms`);
      await drain(design, 10_000);
    }
    const steps: StepResult[] = [];
    for (const [i, offered] of run.steps.entries()) {
      steps.push(await runStep(design, url, offered, run.seconds, run.emulators, run.db));
      await drain(design, 60_000);
      if (!keepRamping(steps, run.steps.slice(i + 1), SUMMARY_STEPS)) break;
    }
    return { steps, visibility: seen };
  } finally {
    await stop(ours.child);
  }
}

/**
 * The service's CPU over `seconds` with 32 shards, nothing to read and the simulator off, once
 * steady: a shard is read at the busy pace until its reads have come back empty for
 * `idleAfterMs`, so the measure starts 5 s after that.
 */
export async function idleCpu(
  run: Run,
  seconds: number,
): Promise<{ cpuPercent: number; seconds: number }> {
  const idle = await start('main.js', { ...run.aws, ...run.names('idle', 32) }, LISTENING);
  run.track(idle.child);
  try {
    const held = await waitForLeases(idle.match[1], 32, 120_000);
    log(`idle: ${held} leases held; measuring ${seconds} s…`);
    await sleep(DEFAULT_TIMING.idleAfterMs + 5_000);
    const cpu0 = cpuSeconds(idle.child.pid);
    await sleep(seconds * 1000);
    const cpuPercent = ((cpuSeconds(idle.child.pid) - cpu0) / seconds) * 100;
    log(`idle with 32 shards: ${cpuPercent.toFixed(2)}% of a core`);
    return { cpuPercent, seconds };
  } finally {
    await stop(idle.child);
  }
}

export async function planDesign(run: Run, id: string): Promise<StepResult[]> {
  const planNames = run.names('plan');
  const ingest = await start(
    'main.js',
    { ...run.aws, ...planNames, CONSUMER_ENABLED: 'false' },
    LISTENING,
  );
  run.track(ingest.child);
  const planUrl = ingest.match[1];
  const baselineTable = `bench-${id}-plan-baseline`;
  const dynamoDb = createDynamoDbClient({
    region: 'us-east-1',
    dynamoDb: run.dynamoUrl,
    credentials: { accessKeyId: 'embedded', secretAccessKey: 'embedded' },
  });
  await dynamoDb.send(
    new CreateTableCommand({
      TableName: baselineTable,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: 'city_id', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: 'city_id', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
    }),
  );
  const baseline = await start(
    'tools/baseline-consumer.js',
    { ...run.aws, ...planNames, BASELINE_TABLE: baselineTable },
    /^ready$/,
  );
  run.track(baseline.child);
  let baselineConsumed = 0;
  baseline.child.stdout!.on('data', (chunk: Buffer) => {
    const match = /consumed (\d+)\n?$/.exec(chunk.toString().trim());
    if (match) baselineConsumed = Number(match[1]);
  });
  const design: Design = {
    name: "the plan's loop",
    table: baselineTable,
    consumed: async () => baselineConsumed,
    ingested: () => metric(planUrl, 'aq_records_ingested_total'),
    pids: () => ({ service: ingest.child.pid, consumer: baseline.child.pid }),
  };
  try {
    const steps: StepResult[] = [];
    for (const [i, offered] of run.steps.entries()) {
      steps.push(await runStep(design, planUrl, offered, run.seconds, run.emulators, run.db));
      if (!keepRamping(steps, run.steps.slice(i + 1), [])) break;
      await drain(design, 20_000);
    }
    return steps;
  } finally {
    await stop(baseline.child);
    await stop(ingest.child);
  }
}
