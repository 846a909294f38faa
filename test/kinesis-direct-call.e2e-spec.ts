import {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
  PutRecordsCommand,
  SplitShardCommand,
} from '@aws-sdk/client-kinesis';
import { randomBytes } from 'node:crypto';
import { createKinesisClient } from '../src/infra/aws/aws-clients';
import { KinesisShardReader } from '../src/stream-consumer/kinesis-shard-reader';
import { eventually } from './support/test-app';

/**
 * The consumer sends GetRecords without the SDK's command class (kinesis-direct-call.ts). Here it
 * reads the same shard as the SDK does, on the Kinesis emulator: the same records, byte for byte,
 * the same end of a closed shard, and errors under the names the SDK gives them.
 */
const STREAM = `direct-call-${Date.now()}`;
const SHARD = 'shardId-000000000000';

/** What the SDK's GetRecords returns, in the reader's shape. */
async function sdkRead(kinesis: KinesisClient, iterator: string, limit: number) {
  const out = await kinesis.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: limit }));
  return {
    records: (out.Records ?? []).map((r) => ({
      data: Buffer.from(r.Data!),
      sequenceNumber: r.SequenceNumber,
      partitionKey: r.PartitionKey,
      arrivedAt: r.ApproximateArrivalTimestamp,
    })),
    next: out.NextShardIterator,
    millisBehindLatest: out.MillisBehindLatest,
  };
}

async function iterator(kinesis: KinesisClient): Promise<string> {
  const out = await kinesis.send(
    new GetShardIteratorCommand({
      StreamName: STREAM,
      ShardId: SHARD,
      ShardIteratorType: 'TRIM_HORIZON',
    }),
  );
  return out.ShardIterator!;
}

const active = (kinesis: KinesisClient) =>
  eventually(async () => {
    const { StreamDescriptionSummary: s } = await kinesis.send(
      new DescribeStreamSummaryCommand({ StreamName: STREAM }),
    );
    return s?.StreamStatus === 'ACTIVE' ? true : undefined;
  }, `${STREAM} to be ACTIVE`);

describe('GetRecords sent directly (without the SDK command)', () => {
  let kinesis: KinesisClient;
  let reader: KinesisShardReader;

  beforeAll(async () => {
    kinesis = createKinesisClient({
      region: 'us-east-1',
      kinesis: process.env.E2E_KINESIS_ENDPOINT,
      credentials: { accessKeyId: 'e2e', secretAccessKey: 'e2e' },
    });
    reader = new KinesisShardReader(kinesis, STREAM);
    await kinesis.send(new CreateStreamCommand({ StreamName: STREAM, ShardCount: 1 }));
    await active(kinesis);
  });
  afterAll(() => kinesis?.destroy());

  it('returns what the SDK returns, page by page: data byte for byte, keys, sequence numbers, arrival times; and the end of a closed shard', async () => {
    // Binary data of every length up to 3 KB (base64 padding of each kind), keys beyond ASCII.
    const sent = Array.from({ length: 40 }, (_, i) => ({
      Data: randomBytes(1 + ((i * 97) % 3000)),
      PartitionKey: `k-${i}-ü-城市`,
    }));
    await kinesis.send(new PutRecordsCommand({ StreamName: STREAM, Records: sent }));
    await kinesis.send(
      new SplitShardCommand({
        StreamName: STREAM,
        ShardToSplit: SHARD,
        NewStartingHashKey: (2n ** 127n).toString(),
      }),
    );
    await active(kinesis);

    const limit = 7;
    let bySdk: string | undefined = await iterator(kinesis);
    let direct: string | undefined = await iterator(kinesis);
    const read: Uint8Array[] = [];
    let pages = 0;
    while (bySdk !== undefined) {
      expect(direct).toBeDefined();
      const want = await sdkRead(kinesis, bySdk, limit);
      const got = await reader.read(direct!, limit);
      expect(got.records).toEqual(want.records);
      // How far behind depends on when each read ran: the same kind of answer, not the same value.
      expect(typeof got.millisBehindLatest).toBe(typeof want.millisBehindLatest);
      expect(got.next === undefined).toBe(want.next === undefined);
      read.push(...got.records.map((r) => r.data));
      bySdk = want.next;
      direct = got.next;
      pages += 1;
      if (pages > 50) throw new Error('the closed shard never ended');
    }
    expect(direct).toBeUndefined();
    expect(read).toEqual(sent.map((r) => r.Data));
    expect(pages).toBeGreaterThan(sent.length / limit);
  });

  it('fails with the error the SDK names, as a client fault, for an iterator Kinesis refuses', async () => {
    const bad = Buffer.from('not an iterator').toString('base64');
    const sdkError = await sdkRead(kinesis, bad, 1).then(
      () => undefined,
      (error: Error & { $fault?: string }) => error,
    );
    const directError = await reader.read(bad, 1).then(
      () => undefined,
      (error: Error & { $fault?: string; $metadata?: { httpStatusCode?: number } }) => error,
    );
    expect(sdkError).toBeDefined();
    expect(directError).toBeDefined();
    expect(directError!.name).toBe(sdkError!.name);
    expect(directError!.message).toBe(sdkError!.message);
    expect(directError!.$fault).toBe('client');
    expect(directError!.$metadata!.httpStatusCode).toBe(400);
  });
});
