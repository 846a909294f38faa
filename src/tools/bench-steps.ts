import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { ChildProcess } from 'node:child_process';
import { createDocumentClient } from '../infra/aws/aws-clients';
import { isSustained, SAMPLE_WAIT_MS, SAMPLES, StepResult } from './bench-report';
import { cpuSeconds, log, rssMb, sleep } from './bench-processes';
import { runLoad } from './load-generator';
import { percentile } from './percentile';

/** How long a sampled measurement is waited for before it counts as never written. */

export interface Design {
  name: string;
  consumed(): Promise<number>;
  ingested(): Promise<number>;
  pids(): { service?: number; consumer?: number };
  table: string;
}

export type EmulatorPids = { kinesis?: number; dynamoDb?: number };

export function cpuOf(pids: { service?: number; consumer?: number }, emulators: EmulatorPids) {
  return {
    service: cpuSeconds(pids.service),
    consumer: cpuSeconds(pids.consumer),
    kinesis: cpuSeconds(emulators.kinesis),
    dynamoDb: cpuSeconds(emulators.dynamoDb),
  };
}

/** The step's figures once the load is over, from the CPU before and after and the latencies. */
export function stepResult(
  offered: number,
  fields: Pick<
    StepResult,
    'ingestRate' | 'consumedRate' | 'backlogStart' | 'backlogEnd' | 'ackP50Ms' | 'ackP99Ms'
  >,
  consumed: number,
  latencies: number[],
  cpu: { before: ReturnType<typeof cpuOf>; after: ReturnType<typeof cpuOf> },
  servicePid: number | undefined,
  hasConsumer: boolean,
): StepResult {
  const { before, after } = cpu;
  const serviceCpuS = after.service - before.service + (after.consumer - before.consumer);
  const step: StepResult = {
    offered,
    ...fields,
    e2eP50Ms: percentile(latencies, 50),
    e2eP95Ms: percentile(latencies, 95),
    e2eP99Ms: percentile(latencies, 99),
    e2eSamples: latencies.length,
    serviceCpuS,
    consumerCpuS: hasConsumer ? after.consumer - before.consumer : undefined,
    kinesisCpuS: after.kinesis - before.kinesis,
    dynamoDbCpuS: after.dynamoDb - before.dynamoDb,
    serviceRssMb: rssMb(servicePid),
    cpuUsPerMeasurement: consumed > 0 ? (serviceCpuS * 1e6) / consumed : Number.NaN,
    sustained: false,
  };
  step.sustained = isSustained(step);
  return step;
}

export function logStep(name: string, step: StepResult): void {
  log(
    `${name} ${step.offered}/s: ingested ${step.ingestRate.toFixed(0)}/s consumed ${step.consumedRate.toFixed(0)}/s backlog ${step.backlogStart}→${step.backlogEnd} e2e p99 ${step.e2eP99Ms} ms ${step.sustained ? 'sustained' : 'NOT sustained'}`,
  );
}

export async function runStep(
  design: Design,
  target: string,
  offered: number,
  seconds: number,
  emulators: EmulatorPids,
  db: ReturnType<typeof createDocumentClient>,
): Promise<StepResult> {
  const samples: { key: Record<string, string>; ackedAt: number }[] = [];
  const every = Math.max(1, Math.floor((offered * seconds) / SAMPLES));
  let n = 0;
  const backlogStart = (await design.ingested()) - (await design.consumed());
  const consumedStart = await design.consumed();
  const p = design.pids();
  const before = cpuOf(p, emulators);
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
  const after = cpuOf(p, emulators);
  // POST ack → item written: stored_at of a sample of the acknowledged measurements.
  const latencies: number[] = [];
  const deadline = Date.now() + SAMPLE_WAIT_MS;
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
  const step = stepResult(
    offered,
    {
      ingestRate: report.acknowledged / seconds,
      consumedRate: consumed / elapsed,
      backlogStart,
      backlogEnd,
      ackP50Ms: report.ackP50Ms,
      ackP99Ms: report.ackP99Ms,
    },
    consumed,
    latencies,
    { before, after },
    p.service,
    p.consumer !== undefined,
  );
  logStep(design.name, step);
  return step;
}

export async function drain(design: Design, maxMs: number): Promise<void> {
  const deadline = Date.now() + maxMs;
  while (Date.now() < deadline && (await design.ingested()) - (await design.consumed()) > 0)
    await sleep(500);
}

export interface Run {
  steps: number[];
  seconds: number;
  emulators: EmulatorPids;
  aws: Record<string, string>;
  names: (design: string, shards?: number) => Record<string, string>;
  dynamoUrl: string;
  db: ReturnType<typeof createDocumentClient>;
  track: (child: ChildProcess) => void;
}
