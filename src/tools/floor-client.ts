import { BatchWriteItemCommand, WriteRequest } from '@aws-sdk/client-dynamodb';
import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  ListShardsCommand,
  PutRecordsCommand,
  PutRecordsRequestEntry,
} from '@aws-sdk/client-kinesis';
import { createInterface } from 'node:readline';
import { parseWindowSizes } from '../domain/windows';
import { normaliseMeasurement } from '../domain/measurement';
import { createDynamoDbClient, createKinesisClient } from '../infra/aws/aws-clients';
import { runLimited } from '../infra/aws/dynamodb-calls';
import {
  MeasurementGenerator,
  simulatedCities,
} from '../ingestion/simulator/measurement-generator';
import { sleep } from './bench-processes';
import { SAMPLE_WAIT_MS, SAMPLES } from './bench-report';
import { CityItems, cityItems } from './floor-items';
import { percentile } from './percentile';

/**
 * The floor of the benchmark: the emulators driven by a minimal client that makes the service's
 * calls with none of its logic. Pre-encoded PutRecords (≤500 a call, every 20 ms, open loop);
 * one reader per shard (GetRecords ≤10,000, at most 5 calls/s, like the service); pre-marshalled
 * BatchWriteItem (25 a call, 16 in parallel) of one realtime item per record, and every flush
 * interval one latest row per city seen and one aggregate row per city and window. No decoding,
 * validation, aggregation, leases or checkpoints.
 *
 * Commands on stdin, one JSON line each, answered by one JSON line on stdout:
 * `{"step":{"rate":R,"seconds":S}}` and `{"drain":{"maxMs":M}}`.
 */
const env = process.env;
const stream = env.KINESIS_STREAM_NAME!;
const realtimeTable = env.DYNAMODB_REALTIME_TABLE!;
const aggregatesTable = env.DYNAMODB_AGGREGATES_TABLE!;
const flushMs = Number(env.AGGREGATION_FLUSH_MS ?? '1000');
const endpoints = {
  region: env.AWS_REGION ?? 'us-east-1',
  kinesis: env.AWS_ENDPOINT_URL_KINESIS,
  dynamoDb: env.AWS_ENDPOINT_URL_DYNAMODB,
};
const kinesis = createKinesisClient(endpoints);
const dynamoDb = createDynamoDbClient(endpoints);
const MAX_PUT = 500;
const TICK_MS = 20;
const MAX_IN_FLIGHT = 64;

let ingested = 0;
let consumed = 0;
/** Sequence number → ack time of the sampled records not yet written. */
const samples = new Map<string, number>();
let latencies: number[] = [];

function buildPool(): { entries: PutRecordsRequestEntry[]; byCity: Map<string, CityItems> } {
  const cities = simulatedCities(Number(env.FLOOR_CITIES ?? '100'));
  const windows = parseWindowSizes(env.AGGREGATION_WINDOWS ?? '5m');
  const generator = new MeasurementGenerator(cities, 11);
  const now = Date.now();
  const variants = Math.max(1, Math.ceil(1000 / cities.length));
  const entries: PutRecordsRequestEntry[] = [];
  const byCity = new Map<string, CityItems>();
  for (let v = 0; v < variants; v++) {
    for (const city of cities) {
      const m = normaliseMeasurement(generator.next(new Date(now - v), city), new Date(now));
      entries.push({ Data: Buffer.from(JSON.stringify(m)), PartitionKey: m.city_id });
      if (!byCity.has(m.city_id)) byCity.set(m.city_id, cityItems(m, windows, now));
    }
  }
  return { entries, byCity };
}

const { entries: pool, byCity } = buildPool();

async function writeAll(table: string, writes: WriteRequest[]): Promise<void> {
  const chunks: WriteRequest[][] = [];
  for (let i = 0; i < writes.length; i += 25) chunks.push(writes.slice(i, i + 25));
  await runLimited(chunks, 16, async (chunk) => {
    let pending: WriteRequest[] = chunk;
    for (let attempt = 0; pending.length > 0; attempt++) {
      if (attempt > 0) await sleep(Math.min(1000, 20 * 2 ** attempt));
      const out = await dynamoDb.send(
        new BatchWriteItemCommand({ RequestItems: { [table]: pending } }),
      );
      pending = out.UnprocessedItems?.[table] ?? [];
    }
  });
}

async function readShard(shardId: string): Promise<void> {
  let iterator = (
    await kinesis.send(
      new GetShardIteratorCommand({
        StreamName: stream,
        ShardId: shardId,
        ShardIteratorType: 'TRIM_HORIZON',
      }),
    )
  ).ShardIterator;
  const seen = new Set<string>();
  let lastFlush = Date.now();
  while (iterator) {
    const started = Date.now();
    try {
      const page = await kinesis.send(
        new GetRecordsCommand({ ShardIterator: iterator, Limit: 10_000 }),
      );
      const records = page.Records ?? [];
      if (records.length > 0) {
        const storedAt = Date.now();
        const writes: WriteRequest[] = records.map((r) => {
          const seq = r.SequenceNumber!;
          const ackedAt = samples.get(seq);
          if (ackedAt !== undefined) {
            latencies.push(Math.max(0, storedAt - ackedAt));
            samples.delete(seq);
          }
          seen.add(r.PartitionKey!);
          const item = byCity.get(r.PartitionKey!)!.realtime;
          return { PutRequest: { Item: { ...item, sk: { S: seq } } } };
        });
        await writeAll(realtimeTable, writes);
        consumed += records.length;
      }
      if (seen.size > 0 && Date.now() - lastFlush >= flushMs) {
        const cities = [...seen].map((c) => byCity.get(c)!);
        seen.clear();
        lastFlush = Date.now();
        await writeAll(
          realtimeTable,
          cities.map((c) => ({ PutRequest: { Item: c.latest } })),
        );
        await writeAll(
          aggregatesTable,
          cities.flatMap((c) => c.aggregates.map((Item) => ({ PutRequest: { Item } }))),
        );
      }
      iterator = page.NextShardIterator;
    } catch (error) {
      process.stderr.write(`${shardId}: ${(error as Error).message}\n`);
    }
    await sleep(200 - (Date.now() - started));
  }
}

async function putRecords(entries: PutRecordsRequestEntry[], acks: number[], every: number) {
  let pending = entries;
  for (let attempt = 0; pending.length > 0 && attempt < 10; attempt++) {
    if (attempt > 0) await sleep(100);
    const t0 = performance.now();
    try {
      const out = await kinesis.send(
        new PutRecordsCommand({ StreamName: stream, Records: pending }),
      );
      const ackedAt = Date.now();
      acks.push(performance.now() - t0);
      const failed: PutRecordsRequestEntry[] = [];
      (out.Records ?? []).forEach((r, i) => {
        if (r.ErrorCode) return void failed.push(pending[i]);
        if (ingested++ % every === 0) samples.set(r.SequenceNumber!, ackedAt);
      });
      pending = failed;
    } catch (error) {
      process.stderr.write(`PutRecords: ${(error as Error).message}\n`);
    }
  }
}

/** Open loop: the records due every tick go out in PutRecords calls, whatever the answers. */
async function step(rate: number, seconds: number) {
  samples.clear();
  latencies = [];
  const every = Math.max(1, Math.floor((rate * seconds) / SAMPLES));
  const acks: number[] = [];
  const backlogStart = ingested - consumed;
  const [ingestedStart, consumedStart] = [ingested, consumed];
  const inFlight = new Set<Promise<void>>();
  const started = Date.now();
  let generated = 0;
  let next = 0;
  const due: PutRecordsRequestEntry[] = [];
  while (Date.now() < started + seconds * 1000 || due.length > 0) {
    const target = Math.min(rate * seconds, Math.floor(((Date.now() - started) / 1000) * rate));
    for (; generated < target; generated++) due.push(pool[next++ % pool.length]);
    while (due.length > 0 && inFlight.size < MAX_IN_FLIGHT) {
      const call = putRecords(due.splice(0, MAX_PUT), acks, every).finally(() =>
        inFlight.delete(call),
      );
      inFlight.add(call);
    }
    await sleep(TICK_MS);
  }
  await Promise.all([...inFlight]);
  const elapsed = (Date.now() - started) / 1000;
  const result = {
    ingestRate: (ingested - ingestedStart) / seconds,
    consumedRate: (consumed - consumedStart) / elapsed,
    consumed: consumed - consumedStart,
    backlogStart,
    backlogEnd: ingested - consumed,
    ackP50Ms: percentile(acks, 50),
    ackP99Ms: percentile(acks, 99),
  };
  const deadline = Date.now() + SAMPLE_WAIT_MS;
  while (samples.size > 0 && Date.now() < deadline) await sleep(100);
  return { ...result, latencies, missing: samples.size };
}

async function drain(maxMs: number) {
  const deadline = Date.now() + maxMs;
  while (ingested - consumed > 0 && Date.now() < deadline) await sleep(200);
  return { backlog: ingested - consumed };
}

async function main(): Promise<void> {
  const { Shards = [] } = await kinesis.send(new ListShardsCommand({ StreamName: stream }));
  for (const shard of Shards) {
    void readShard(shard.ShardId!).catch((error: Error) => {
      process.stderr.write(`reader of ${shard.ShardId} failed: ${error.message}\n`);
      process.exit(1);
    });
  }
  process.stdout.write('ready\n');
  // One command at a time, in order.
  let queue = Promise.resolve();
  const input = createInterface({ input: process.stdin });
  input.once('close', () => process.exit(0));
  input.on('line', (line) => {
    const command = JSON.parse(line) as {
      step?: { rate: number; seconds: number };
      drain?: { maxMs: number };
    };
    queue = queue.then(async () => {
      const answer = command.step
        ? await step(command.step.rate, command.step.seconds)
        : await drain(command.drain?.maxMs ?? 0);
      process.stdout.write(`${JSON.stringify(answer)}\n`);
    });
  });
}

main().catch((error: Error) => {
  process.stderr.write(`floor client failed: ${error.message}\n`);
  process.exit(1);
});
