import { CreateTableCommand } from '@aws-sdk/client-dynamodb';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createDocumentClient, createDynamoDbClient } from '../infra/aws/aws-clients';
import { CREDENTIALS, cpuSeconds, start } from './bench-processes';
import { highestSustained, isSustained, markdownTable, p99Chart, StepResult } from './bench-report';
import { runLoad } from './load-generator';
import { percentile } from './percentile';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const log = (line: string) => process.stderr.write(`${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rssMb(pid: number | undefined): number {
  try {
    const match = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** The emulator processes under the `npm run emulators` process: kinesalite and the JVM. */
function emulatorPids(root: number): { kinesis?: number; dynamoDb?: number } {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const ppid = Number(readFileSync(`/proc/${name}/stat`, 'utf8').split(') ')[1].split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
    } catch {
      // gone
    }
  }
  const found: { kinesis?: number; dynamoDb?: number } = {};
  const walk = (pid: number) => {
    for (const child of children.get(pid) ?? []) {
      const cmd = readFileSync(`/proc/${child}/cmdline`, 'utf8');
      if (cmd.includes('kinesalite')) found.kinesis = child;
      if (cmd.includes('DynamoDBLocal.jar') && cmd.startsWith('java')) found.dynamoDb = child;
      walk(child);
    }
  };
  walk(root);
  return found;
}

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].reduce(
    (sum, m) => sum + Number(m[1]),
    0,
  );
}

interface Design {
  name: string;
  consumed(): Promise<number>;
  ingested(): Promise<number>;
  pids(): { service?: number; consumer?: number };
  table: string;
}

async function runStep(
  design: Design,
  target: string,
  offered: number,
  seconds: number,
  pids: { kinesis?: number; dynamoDb?: number },
  db: ReturnType<typeof createDocumentClient>,
): Promise<StepResult> {
  const samples: { key: Record<string, string>; ackedAt: number }[] = [];
  const every = Math.max(1, Math.floor((offered * seconds) / 300));
  let n = 0;
  const backlogStart = (await design.ingested()) - (await design.consumed());
  const consumedStart = await design.consumed();
  const p = design.pids();
  const cpu0 = {
    service: cpuSeconds(p.service),
    consumer: cpuSeconds(p.consumer),
    kinesis: cpuSeconds(pids.kinesis),
    dynamoDb: cpuSeconds(pids.dynamoDb),
  };
  const t0 = Date.now();
  const report = await runLoad({
    target,
    rate: offered,
    cities: 100,
    durationS: seconds,
    batch: Math.max(10, Math.min(250, Math.floor(offered / 20))),
    seed: offered,
    duplicates: 0,
    outOfOrder: 0,
    late: 0,
    maxInFlight: 128,
    onAck: (bodies, ids, ackedAt) => {
      for (let i = 0; i < bodies.length; i++) {
        if (n++ % every !== 0) continue;
        samples.push({
          key: {
            city_id: bodies[i].city_id,
            sk: `${new Date(bodies[i].timestamp).toISOString()}#${ids[i]}`,
          },
          ackedAt,
        });
      }
    },
  });
  const elapsed = (Date.now() - t0) / 1000;
  const backlogEnd = (await design.ingested()) - (await design.consumed());
  const consumed = (await design.consumed()) - consumedStart;
  const cpu1 = {
    service: cpuSeconds(p.service),
    consumer: cpuSeconds(p.consumer),
    kinesis: cpuSeconds(pids.kinesis),
    dynamoDb: cpuSeconds(pids.dynamoDb),
  };
  // POST ack → item written: stored_at of a sample of the acknowledged measurements.
  const latencies: number[] = [];
  const deadline = Date.now() + 20_000;
  for (const sample of samples) {
    for (;;) {
      const { Item } = await db.send(new GetCommand({ TableName: design.table, Key: sample.key }));
      if (Item) {
        latencies.push(Math.max(0, Number(Item.stored_at) - sample.ackedAt));
        break;
      }
      if (Date.now() > deadline) {
        latencies.push(Number.POSITIVE_INFINITY);
        break;
      }
      await sleep(100);
    }
  }
  const serviceCpuS = cpu1.service - cpu0.service + (cpu1.consumer - cpu0.consumer);
  const step: StepResult = {
    offered,
    ingestRate: report.acknowledged / seconds,
    consumedRate: consumed / elapsed,
    backlogStart,
    backlogEnd,
    ackP50Ms: report.ackP50Ms,
    ackP99Ms: report.ackP99Ms,
    e2eP50Ms: percentile(latencies, 50),
    e2eP95Ms: percentile(latencies, 95),
    e2eP99Ms: percentile(latencies, 99),
    e2eSamples: latencies.length,
    serviceCpuS,
    consumerCpuS: p.consumer ? cpu1.consumer - cpu0.consumer : undefined,
    kinesisCpuS: cpu1.kinesis - cpu0.kinesis,
    dynamoDbCpuS: cpu1.dynamoDb - cpu0.dynamoDb,
    serviceRssMb: rssMb(p.service),
    cpuUsPerMeasurement: consumed > 0 ? (serviceCpuS * 1e6) / consumed : Number.NaN,
    sustained: false,
  };
  step.sustained = isSustained(step);
  log(
    `${design.name} ${offered}/s: ingested ${step.ingestRate.toFixed(0)}/s consumed ${step.consumedRate.toFixed(0)}/s backlog ${backlogStart}→${backlogEnd} e2e p99 ${step.e2eP99Ms} ms ${step.sustained ? 'sustained' : 'NOT sustained'}`,
  );
  return step;
}

async function drain(design: Design, maxMs: number): Promise<void> {
  const deadline = Date.now() + maxMs;
  while (Date.now() < deadline && (await design.ingested()) - (await design.consumed()) > 0)
    await sleep(500);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      steps: { type: 'string', default: '250,500,1000,2000,4000,8000' },
      'step-seconds': { type: 'string', default: '30' },
      'warmup-seconds': { type: 'string', default: '15' },
      out: { type: 'string', default: 'bench/results' },
    },
  });
  const steps = values.steps!.split(',').map(Number);
  const seconds = Number(values['step-seconds']);
  const id = randomBytes(3).toString('hex');
  const children: ChildProcess[] = [];
  const stopAll = () => children.forEach((c) => c.exitCode === null && c.kill('SIGTERM'));
  process.once('SIGINT', () => {
    stopAll();
    process.exit(130);
  });
  try {
    log('starting the emulators…');
    const emulators = await start(
      'emulators.js',
      {
        EMBEDDED_KINESIS_PORT: '0',
        EMBEDDED_DYNAMODB_PORT: '0',
        DATA_DIR: '',
        KINESIS_STREAM_NAME: `bench-${id}-warm`,
        KINESIS_SHARD_COUNT: '1',
      },
      /AWS_ENDPOINT_URL_DYNAMODB=(\S+)/,
    );
    children.push(emulators.child);
    const kinesisUrl = /AWS_ENDPOINT_URL_KINESIS=(\S+)/.exec(emulators.lines.join('\n'))![1];
    const dynamoUrl = emulators.match[1];
    const pids = emulatorPids(emulators.child.pid!);
    const aws = {
      ...CREDENTIALS,
      BACKEND: 'aws',
      AWS_ENDPOINT_URL_KINESIS: kinesisUrl,
      AWS_ENDPOINT_URL_DYNAMODB: dynamoUrl,
      PROVISION_RESOURCES: 'true',
      SIMULATOR_ENABLED: 'false',
      LOG_LEVEL: 'info',
      PORT: '0',
      RATE_LIMIT_PER_MINUTE: '0',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    };
    const names = (design: string) => ({
      KINESIS_STREAM_NAME: `bench-${id}-${design}`,
      KINESIS_SHARD_COUNT: '4',
      DYNAMODB_REALTIME_TABLE: `bench-${id}-${design}-realtime`,
      DYNAMODB_AGGREGATES_TABLE: `bench-${id}-${design}-aggregates`,
      DYNAMODB_DLQ_TABLE: `bench-${id}-${design}-dlq`,
      DYNAMODB_LEASE_TABLE: `bench-${id}-${design}-leases`,
    });
    const dynamoDb = createDynamoDbClient({
      region: 'us-east-1',
      dynamoDb: dynamoUrl,
      credentials: { accessKeyId: 'embedded', secretAccessKey: 'embedded' },
    });
    const db = createDocumentClient(dynamoDb);

    // Our design: the service, with its consumer.
    const ours = await start(
      'main.js',
      { ...aws, ...names('ours') },
      /listening on (http:\/\/localhost:\d+)/,
    );
    children.push(ours.child);
    const oursUrl = ours.match[1];
    const oursDesign: Design = {
      name: 'this service',
      table: names('ours').DYNAMODB_REALTIME_TABLE,
      consumed: () => metric(oursUrl, 'aq_records_consumed_total'),
      ingested: () => metric(oursUrl, 'aq_records_ingested_total'),
      pids: () => ({ service: ours.child.pid }),
    };
    log(`warming up for ${values['warmup-seconds']} s…`);
    await runLoad({
      target: oursUrl,
      rate: 300,
      cities: 100,
      durationS: Number(values['warmup-seconds']),
      batch: 20,
      seed: 7,
      duplicates: 0,
      outOfOrder: 0,
      late: 0,
    });
    await drain(oursDesign, 30_000);
    const oursSteps: StepResult[] = [];
    for (const offered of steps) {
      oursSteps.push(await runStep(oursDesign, oursUrl, offered, seconds, pids, db));
      await drain(oursDesign, 60_000);
      if (oursSteps.slice(-2).length === 2 && oursSteps.slice(-2).every((s) => !s.sustained)) break;
    }
    ours.child.kill('SIGTERM');

    // The plan's design: the same ingestion (consumer off) and the plan's loop as the consumer.
    const planNames = names('plan');
    const ingest = await start(
      'main.js',
      { ...aws, ...planNames, CONSUMER_ENABLED: 'false' },
      /listening on (http:\/\/localhost:\d+)/,
    );
    children.push(ingest.child);
    const planUrl = ingest.match[1];
    const baselineTable = `bench-${id}-plan-baseline`;
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
      { ...aws, ...planNames, BASELINE_TABLE: baselineTable },
      /^ready$/,
    );
    children.push(baseline.child);
    let baselineConsumed = 0;
    baseline.child.stdout!.on('data', (chunk: Buffer) => {
      const match = /consumed (\d+)\n?$/.exec(chunk.toString().trim());
      if (match) baselineConsumed = Number(match[1]);
    });
    const planDesign: Design = {
      name: "the plan's loop",
      table: baselineTable,
      consumed: async () => baselineConsumed,
      ingested: () => metric(planUrl, 'aq_records_ingested_total'),
      pids: () => ({ service: ingest.child.pid, consumer: baseline.child.pid }),
    };
    const planSteps: StepResult[] = [];
    for (const offered of steps) {
      planSteps.push(await runStep(planDesign, planUrl, offered, seconds, pids, db));
      if (planSteps.slice(-2).length === 2 && planSteps.slice(-2).every((s) => !s.sustained)) break;
      await drain(planDesign, 20_000);
    }

    const oursBest = highestSustained(oursSteps);
    const planBest = highestSustained(planSteps);
    const date = new Date().toISOString().slice(0, 10);
    const out = resolve(values.out!);
    mkdirSync(out, { recursive: true });
    const machine = `${cpus().length} cores, Node ${process.version}`;
    const summary = `Highest sustained step (backlog flat, end-to-end p99 < 1 s): this service ${oursBest}/s, the plan's loop ${planBest || 'none'}/s${planBest ? ` (${(oursBest / planBest).toFixed(1)}×)` : ''}.`;
    const markdown = [
      `# Benchmark ${date} (${machine}, embedded emulators, 4 shards, 100 cities, ${seconds} s a step)`,
      '',
      summary,
      '',
      markdownTable('This service', oursSteps),
      '',
      markdownTable(
        "The plan's loop (GetRecords Limit=100, PutItem per record, sleep 1 s, LATEST)",
        planSteps,
      ),
      '',
      'End-to-end = POST acknowledged → item written in DynamoDB (`stored_at` of a sample of ~300 records a step). CPU in seconds over the step; CPU µs per measurement = the service’s CPU (plus the baseline consumer’s) ÷ records consumed.',
    ].join('\n');
    const chart = p99Chart([
      { name: 'this service', color: '#0b63c5', steps: oursSteps },
      { name: "the plan's loop", color: '#d2691e', steps: planSteps },
    ]);
    writeFileSync(
      join(out, `${date}.json`),
      JSON.stringify(
        { date, machine, seconds, ours: oursSteps, plan: planSteps, oursBest, planBest },
        null,
        2,
      ),
    );
    writeFileSync(join(out, `${date}.md`), `${markdown}\n`);
    writeFileSync(join(out, `${date}.svg`), chart);
    writeFileSync(join(out, 'latest.md'), `${markdown}\n`);
    writeFileSync(join(out, 'latest.svg'), chart);
    process.stdout.write(`${markdown}\n\nWritten to ${out}/${date}.{json,md,svg}\n`);
  } finally {
    stopAll();
  }
}

main().catch((error: Error) => {
  process.stderr.write(`bench failed: ${error.stack ?? error.message}\n`);
  process.exit(1);
});
