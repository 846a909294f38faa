import { createInterface } from 'node:readline';
import { provisionResources } from '../infra/embedded/resource-provisioner';
import { StepResult } from './bench-report';
import { start, Started, stop } from './bench-processes';
import { cpuOf, EmulatorPids, logStep, Run, stepResult } from './bench-steps';
import { keepRamping } from './bench-summary';

/** The floor program, asked one JSON command at a time on its stdin. */
export class FloorClient {
  private readonly answers: ((line: string) => void)[] = [];

  constructor(readonly started: Started) {
    createInterface({ input: started.child.stdout! }).on('line', (line) => {
      if (line.startsWith('{')) this.answers.shift()?.(line);
    });
  }

  ask<T>(command: object): Promise<T> {
    return new Promise((resolveAnswer) => {
      this.answers.push((line) => resolveAnswer(JSON.parse(line) as T));
      this.started.child.stdin!.write(`${JSON.stringify(command)}\n`);
    });
  }

  async step(offered: number, seconds: number, emulators: EmulatorPids): Promise<StepResult> {
    const pid = this.started.child.pid;
    const before = cpuOf({ service: pid }, emulators);
    const answer = await this.ask<
      Pick<
        StepResult,
        'ingestRate' | 'consumedRate' | 'backlogStart' | 'backlogEnd' | 'ackP50Ms' | 'ackP99Ms'
      > & { consumed: number; latencies: number[]; missing: number }
    >({ step: { rate: offered, seconds } });
    const after = cpuOf({ service: pid }, emulators);
    const { consumed, latencies, missing, ...fields } = answer;
    const all = [...latencies, ...Array<number>(missing).fill(Number.POSITIVE_INFINITY)];
    const step = stepResult(offered, fields, consumed, all, { before, after }, pid, false);
    logStep('the floor', step);
    return step;
  }
}

export async function floorDesign(run: Run): Promise<StepResult[]> {
  const names = run.names('floor');
  const endpoints = {
    region: 'us-east-1',
    kinesis: run.aws.AWS_ENDPOINT_URL_KINESIS,
    dynamoDb: run.dynamoUrl,
    credentials: { accessKeyId: 'embedded', secretAccessKey: 'embedded' },
  };
  await provisionResources(endpoints, {
    stream: { name: names.KINESIS_STREAM_NAME, shardCount: Number(names.KINESIS_SHARD_COUNT) },
    tables: {
      realtime: names.DYNAMODB_REALTIME_TABLE,
      aggregates: names.DYNAMODB_AGGREGATES_TABLE,
      dlq: names.DYNAMODB_DLQ_TABLE,
      leases: names.DYNAMODB_LEASE_TABLE,
      state: names.DYNAMODB_STATE_TABLE,
    },
  });
  const started = await start('tools/floor-client.js', { ...run.aws, ...names }, /^ready$/);
  run.track(started.child);
  const floor = new FloorClient(started);
  try {
    await floor.ask({ step: { rate: 300, seconds: 5 } });
    await floor.ask({ drain: { maxMs: 30_000 } });
    const steps: StepResult[] = [];
    for (const [i, offered] of run.steps.entries()) {
      steps.push(await floor.step(offered, run.seconds, run.emulators));
      await floor.ask({ drain: { maxMs: 60_000 } });
      if (!keepRamping(steps, run.steps.slice(i + 1), [])) break;
    }
    return steps;
  } finally {
    await stop(started.child);
  }
}
