import { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createDocumentClient, createDynamoDbClient } from '../infra/aws/aws-clients';
import { idleCpu, planDesign, serviceDesign } from './bench-designs';
import { floorDesign } from './bench-floor';
import { CREDENTIALS, emulatorPids, startEmulators } from './bench-processes';
import { markdownTable, p99Chart, reportName, SAMPLE_WAIT_MS, StepResult } from './bench-report';
import { runScaling } from './bench-scaling';
import { Run } from './bench-steps';
import { Part, summarize, summaryMarkdown } from './bench-summary';
import { ScalingResult, scalingRows, scalingTable } from './scaling-report';
import { VisibilityResult } from './visibility-step';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
function options() {
  return parseArgs({
    options: {
      steps: { type: 'string', default: '250,500,1000,2000,4000,8000' },
      'step-seconds': { type: 'string', default: '20' },
      'warmup-seconds': { type: 'string', default: '60' },
      out: { type: 'string', default: 'bench/results' },
      name: { type: 'string' },
      'visibility-count': { type: 'string', default: '300' },
      'visibility-rate': { type: 'string', default: '20' },
      'visibility-poll-ms': { type: 'string', default: '20' },
      'idle-seconds': { type: 'string', default: '60' },
      'skip-floor': { type: 'boolean', default: false },
      'skip-plan': { type: 'boolean', default: false },
      scaling: { type: 'boolean', default: false },
      'scaling-only': { type: 'boolean', default: false },
      'scaling-rate': { type: 'string', default: '1000' },
      'scaling-seconds': { type: 'string', default: '30' },
      'scaling-idle-seconds': { type: 'string', default: '30' },
      'scaling-cases': { type: 'string' },
    },
  }).values;
}

async function main(): Promise<void> {
  const values = options();
  const rows = scalingRows(values['scaling-cases']);
  if (values.name !== undefined && !/^[A-Za-z0-9_-]+$/.test(values.name))
    throw new Error(
      `--name takes letters, digits, - and _ (a part of a file name); not ${JSON.stringify(values.name)}`,
    );
  const steps = values.steps!.split(',').map(Number);
  const seconds = Number(values['step-seconds']);
  const scalingOnly = values['scaling-only']!;
  const skipped: Partial<Record<Part, string>> = {};
  if (scalingOnly) {
    for (const part of ['service', 'floor', 'plan', 'visibility', 'idle'] as Part[])
      skipped[part] = '--scaling-only';
  }
  if (values['skip-floor']) skipped.floor = '--skip-floor';
  if (values['skip-plan']) skipped.plan = '--skip-plan';
  if (Number(values['visibility-count']) === 0) skipped.visibility ??= '--visibility-count 0';
  if (Number(values['idle-seconds']) === 0) skipped.idle ??= '--idle-seconds 0';
  const id = randomBytes(3).toString('hex');
  const children: ChildProcess[] = [];
  const stopAll = () => children.forEach((c) => c.exitCode === null && c.kill('SIGTERM'));
  process.once('SIGINT', () => {
    stopAll();
    process.exit(130);
  });
  try {
    const emulators = await startEmulators(`bench-${id}-warm`, 1);
    children.push(emulators.child);
    const { kinesisUrl, dynamoUrl } = emulators;
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
    };
    const run: Run = {
      steps,
      seconds,
      emulators: emulatorPids(emulators.child.pid!),
      aws,
      names: (design, shards = 4) => ({
        KINESIS_STREAM_NAME: `bench-${id}-${design}`,
        KINESIS_SHARD_COUNT: String(shards),
        DYNAMODB_REALTIME_TABLE: `bench-${id}-${design}-realtime`,
        DYNAMODB_AGGREGATES_TABLE: `bench-${id}-${design}-aggregates`,
        DYNAMODB_DLQ_TABLE: `bench-${id}-${design}-dlq`,
        DYNAMODB_LEASE_TABLE: `bench-${id}-${design}-leases`,
        DYNAMODB_STATE_TABLE: `bench-${id}-${design}-state`,
      }),
      dynamoUrl,
      db: createDocumentClient(
        createDynamoDbClient({
          region: 'us-east-1',
          dynamoDb: dynamoUrl,
          credentials: { accessKeyId: 'embedded', secretAccessKey: 'embedded' },
        }),
      ),
      track: (child) => children.push(child),
    };

    let service: { steps: StepResult[]; visibility?: VisibilityResult } = { steps: [] };
    if (!skipped.service) {
      service = await serviceDesign(run, Number(values['warmup-seconds']), {
        count: skipped.visibility ? 0 : Number(values['visibility-count']),
        rate: Number(values['visibility-rate']),
        pollMs: Number(values['visibility-poll-ms']),
      });
    }
    const idle = skipped.idle ? undefined : await idleCpu(run, Number(values['idle-seconds']));
    const plan = skipped.plan ? [] : await planDesign(run, id);
    const floor = skipped.floor ? [] : await floorDesign(run);
    let scaling: ScalingResult[] | undefined;
    if (values.scaling || scalingOnly) {
      scaling = await runScaling({
        serviceEnv: aws,
        dynamoDbUrl: dynamoUrl,
        prefix: `bench-${id}`,
        rate: Number(values['scaling-rate']),
        seconds: Number(values['scaling-seconds']),
        idleSeconds: Number(values['scaling-idle-seconds']),
        rows,
        track: run.track,
      });
    }

    const { summary, notes } = summarize({
      service: service.steps,
      floor,
      plan,
      visibility: service.visibility,
      idle,
      skipped,
      waitMs: SAMPLE_WAIT_MS,
    });
    write(values.out!, values.name, {
      seconds,
      summary,
      notes,
      service: service.steps,
      floor,
      plan,
      visibility: service.visibility,
      idle,
      scaling,
    });
  } finally {
    stopAll();
  }
}

function write(
  outDir: string,
  label: string | undefined,
  r: {
    seconds: number;
    summary: ReturnType<typeof summarize>['summary'];
    notes: string[];
    service: StepResult[];
    floor: StepResult[];
    plan: StepResult[];
    visibility?: VisibilityResult;
    idle?: { cpuPercent: number; seconds: number };
    scaling?: ScalingResult[];
  },
): void {
  const date = new Date().toISOString().slice(0, 10);
  const out = resolve(outDir);
  mkdirSync(out, { recursive: true });
  const machine = `${cpus().length} cores, Node ${process.version}`;
  const sections: string[] = [
    `# Benchmark ${date} (${machine}, embedded emulators, 4 shards, 100 cities, ${r.seconds} s a step)`,
    '',
    summaryMarkdown(r.summary, r.notes),
    '',
  ];
  if (r.visibility) {
    const v = r.visibility;
    sections.push(
      `**Visibility at ${v.rate}/s** (one POST at a time, POST 202 → readable through \`GET /cities/:cityId/latest\`, ${v.samples} POSTs${v.missing ? `, ${v.missing} not readable within ${SAMPLE_WAIT_MS / 1000} s` : ''}): p50 ${v.p50Ms.toFixed(0)} ms, p95 ${v.p95Ms.toFixed(0)} ms, p99 ${v.p99Ms.toFixed(0)} ms.`,
      '',
    );
  }
  if (r.idle) {
    sections.push(
      `**Idle, 32 shards** (nothing to read, simulator off, ${r.idle.seconds} s): ${r.idle.cpuPercent.toFixed(2)}% of one core.`,
      '',
    );
  }
  if (r.service.length > 0) sections.push(markdownTable('This service', r.service), '');
  if (r.floor.length > 0) {
    sections.push(
      markdownTable(
        'The floor (the emulators driven by a minimal client: pre-encoded PutRecords, GetRecords per shard, pre-marshalled BatchWriteItem; "service CPU" is the client’s)',
        r.floor,
      ),
      '',
    );
  }
  if (r.plan.length > 0) {
    sections.push(
      markdownTable(
        "The plan's loop (GetRecords Limit=100, PutItem per record, sleep 1 s, LATEST)",
        r.plan,
      ),
      '',
    );
  }
  if (r.scaling) {
    sections.push(
      '**Scaling** (one instance; DynamoDB calls counted by a proxy in front of DynamoDB Local; lease-table read units estimated from the items the reads returned, 4 KB a unit for consistent reads, half for eventually consistent ones: DynamoDB Local does not report consumed capacity reliably)',
      '',
      scalingTable(r.scaling),
      '',
    );
  }
  const series = [
    { name: 'this service', color: '#0b63c5', steps: r.service },
    { name: 'the floor', color: '#2e8b57', steps: r.floor },
    { name: "the plan's loop", color: '#d2691e', steps: r.plan },
  ].filter((s) => s.steps.length > 0);
  if (series.length > 0) {
    sections.push(
      'End-to-end = POST acknowledged (the floor: PutRecords acknowledged) → item written in DynamoDB (`stored_at` of a sample of ~300 records a step). CPU in seconds over the step; CPU µs per measurement = the service’s CPU (plus the baseline consumer’s; for the floor, its client’s) ÷ records consumed.',
    );
  }
  const markdown = sections.join('\n');
  const { summary, notes, ...parts } = r;
  const json = { summary, summary_notes: notes, date, machine, ...parts };
  // A run of the scaling table alone does not replace latest.*; no run replaces another's report.
  const name = reportName(date, { scalingOnly: series.length === 0, label }, readdirSync(out));
  writeFileSync(join(out, `${name}.json`), `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(join(out, `${name}.md`), `${markdown}\n`);
  if (series.length > 0) {
    const chart = p99Chart(series);
    writeFileSync(join(out, `${name}.svg`), chart);
    writeFileSync(join(out, 'latest.md'), `${markdown}\n`);
    writeFileSync(join(out, 'latest.svg'), chart);
  }
  process.stdout.write(`${markdown}\n\nWritten to ${out}/${name}.*\n`);
}

main().catch((error: Error) => {
  process.stderr.write(`bench failed: ${error.stack ?? error.message}\n`);
  process.exit(1);
});
