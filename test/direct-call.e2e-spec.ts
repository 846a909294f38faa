import {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
  PutRecordsCommand,
  PutRecordsInput,
  PutRecordsOutput,
  SplitShardCommand,
} from '@aws-sdk/client-kinesis';
import {
  CreateTableCommand,
  DynamoDBClient,
  GetItemCommand,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb';
import {
  BatchWriteCommand,
  DynamoDBDocumentClient,
  TransactWriteCommand,
} from '@aws-sdk/lib-dynamodb';
import { randomBytes } from 'node:crypto';
import {
  createDocumentClient,
  createDynamoDbClient,
  createKinesisClient,
} from '../src/infra/aws/aws-clients';
import { kinesisDirectCall } from '../src/infra/aws/direct-call';
import {
  batchWriteCall,
  marshallTransactItem,
  putAll,
  toPut,
  TransactItem,
  transactWriteCall,
} from '../src/infra/aws/dynamodb-calls';
import { KinesisShardReader } from '../src/stream-consumer/kinesis-shard-reader';
import { eventually } from './support/test-app';

/**
 * The service sends GetRecords, PutRecords, BatchWriteItem and TransactWriteItems (among others)
 * without the SDK's command classes (direct-call.ts). Here, on the emulators: GetRecords reads
 * the same shard as the SDK does (the same records, byte for byte, the same end of a closed
 * shard); PutRecords puts the bytes the SDK reads back; BatchWriteItem and TransactWriteItems
 * store the same attribute values as the document client; and errors come under the names, and
 * with the cancellation reasons, the SDK gives them.
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

  it('PutRecords sent directly puts the bytes the SDK reads back, and answers as the SDK does', async () => {
    const stream = `${STREAM}-put`;
    await kinesis.send(new CreateStreamCommand({ StreamName: stream, ShardCount: 1 }));
    await eventually(async () => {
      const { StreamDescriptionSummary: s } = await kinesis.send(
        new DescribeStreamSummaryCommand({ StreamName: stream }),
      );
      return s?.StreamStatus === 'ACTIVE' ? true : undefined;
    }, `${stream} to be ACTIVE`);
    const sent = Array.from({ length: 30 }, (_, i) => ({
      Data: randomBytes(1 + ((i * 131) % 2000)),
      PartitionKey: `p-${i}-ü-城市`,
    }));
    const put = kinesisDirectCall<PutRecordsInput, PutRecordsOutput>('PutRecords', kinesis);
    const direct = await put.send({ StreamName: stream, Records: sent });
    const bySdk = await kinesis.send(new PutRecordsCommand({ StreamName: stream, Records: sent }));
    expect(direct.FailedRecordCount).toBe(0);
    expect(direct.Records!.map((r) => Object.keys(r).sort())).toEqual(
      bySdk.Records!.map((r) => Object.keys(r).sort()),
    );
    expect(
      direct.Records!.every((r) => r.ShardId === SHARD && /^\d+$/.test(r.SequenceNumber!)),
    ).toBe(true);
    const { ShardIterator } = await kinesis.send(
      new GetShardIteratorCommand({
        StreamName: stream,
        ShardId: SHARD,
        ShardIteratorType: 'TRIM_HORIZON',
      }),
    );
    const read = await kinesis.send(new GetRecordsCommand({ ShardIterator, Limit: 100 }));
    const got = (read.Records ?? []).map((r) => ({
      Data: Buffer.from(r.Data!),
      PartitionKey: r.PartitionKey,
    }));
    expect(got).toEqual([...sent, ...sent]);
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

describe('DynamoDB calls sent directly (without the SDK commands)', () => {
  const table = `direct-call-${Date.now()}`;
  let client: DynamoDBClient;
  let db: DynamoDBDocumentClient;

  beforeAll(async () => {
    client = createDynamoDbClient({
      region: 'us-east-1',
      dynamoDb: process.env.E2E_DYNAMODB_ENDPOINT,
      credentials: { accessKeyId: 'e2e', secretAccessKey: 'e2e' },
    });
    db = createDocumentClient(client);
    await client.send(
      new CreateTableCommand({
        TableName: table,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [
          { AttributeName: 'id', AttributeType: 'S' },
          { AttributeName: 'sk', AttributeType: 'S' },
        ],
        KeySchema: [
          { AttributeName: 'id', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
      }),
    );
    await waitUntilTableExists({ client, maxWaitTime: 60 }, { TableName: table });
  });
  afterAll(() => client?.destroy());

  /** An item of every kind of value the document client marshals. */
  const item = (i: number) => ({
    sk: `2026-01-07T10:00:00.000Z#${i}-ü-城市`,
    city_name: i % 2 ? 'São Paulo' : '東京 "quoted" \\ back\nslash',
    pm25_value: [0, -3.5, 12.25, 1e-7, 123456789012, 0.1 + 0.2][i % 6],
    ok: i % 3 === 0,
    none: null,
    dropped: undefined,
    tags: ['a', 1, { nested: [true, 'x'] }],
    where: { lat: 48.8566, lon: 2.3522, label: '' },
    names: new Set(['x', `y${i}`]),
    counts: new Set([1, 2.5, i]),
    raw: randomBytes(1 + (i % 40)),
  });
  const raw = async (id: string, sk: string) =>
    (
      await client.send(
        new GetItemCommand({
          TableName: table,
          Key: { id: { S: id }, sk: { S: sk } },
          ConsistentRead: true,
        }),
      )
    ).Item;

  it('stores what the document client stores, attribute value for attribute value, over several calls', async () => {
    const items = Array.from({ length: 60 }, (_, i) => item(i));
    for (let i = 0; i < items.length; i += 25)
      await db.send(
        new BatchWriteCommand({
          RequestItems: {
            [table]: items
              .slice(i, i + 25)
              .map((it) => ({ PutRequest: { Item: { ...it, id: 'sdk' } } })),
          },
        }),
      );
    // After the document client's calls, which once changed the marshalling options they share.
    await putAll(
      batchWriteCall(db),
      table,
      items.map((it) => toPut({ ...it, id: 'direct' })),
      3,
    );
    for (const it of items) {
      const direct = await raw('direct', it.sk);
      const bySdk = await raw('sdk', it.sk);
      expect(direct).toBeDefined();
      expect({ ...direct, id: undefined }).toEqual({ ...bySdk, id: undefined });
    }
  });

  it('fails with the error the SDK names, as a client fault, for an item DynamoDB refuses', async () => {
    const refused = { id: 'refused', pm25_value: 1 }; // no sort key
    const sdkError = await db
      .send(
        new BatchWriteCommand({ RequestItems: { [table]: [{ PutRequest: { Item: refused } }] } }),
      )
      .then(
        () => undefined,
        (error: Error) => error,
      );
    const directError = await putAll(batchWriteCall(db), table, [toPut(refused)], 1).then(
      () => undefined,
      (error: Error & { $fault?: string; $metadata?: { httpStatusCode?: number } }) => error,
    );
    expect(sdkError?.name).toBe('ValidationException');
    expect(directError?.name).toBe(sdkError!.name);
    expect(directError!.message).toBe(sdkError!.message);
    expect(directError!.$fault).toBe('client');
    expect(directError!.$metadata!.httpStatusCode).toBe(400);
  });

  /** A transaction of every kind of item, for one writer (`by`): the same on both sides. */
  const transaction = (by: string, counter: number): TransactItem[] => [
    {
      Put: {
        TableName: table,
        Item: { id: `tx-${by}`, sk: 'state#0', data: randomBytes(300), chunks: 1, at: 'ü' },
      },
    },
    {
      Update: {
        TableName: table,
        Key: { id: `tx-${by}`, sk: 'lease' },
        UpdateExpression:
          'SET leaseCounter = if_not_exists(leaseCounter, :zero) + :one, leaseOwner = :owner',
        ConditionExpression: 'attribute_not_exists(leaseCounter) OR leaseCounter = :counter',
        ExpressionAttributeValues: { ':zero': 0, ':one': 1, ':owner': 'i-1', ':counter': counter },
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
      },
    },
    { Delete: { TableName: table, Key: { id: `tx-${by}`, sk: 'stale' } } },
  ];
  const sdkTransact = (items: TransactItem[]) =>
    db.send(new TransactWriteCommand({ TransactItems: items }));
  const directTransact = (items: TransactItem[]) =>
    transactWriteCall(db).send({ TransactItems: items.map(marshallTransactItem) });
  const failure = (p: Promise<unknown>) =>
    p.then(
      () => undefined,
      (error: Error & { CancellationReasons?: unknown; $fault?: string }) => error,
    );

  it('TransactWriteItems sent directly writes what the document client writes, and is refused with the same reasons', async () => {
    for (const [by, transact] of [
      ['sdk', sdkTransact],
      ['direct', directTransact],
    ] as const) {
      await transact(transaction(by, 0));
      await transact(transaction(by, 1));
    }
    for (const sk of ['state#0', 'lease']) {
      const bySdk = await raw('tx-sdk', sk);
      const direct = await raw('tx-direct', sk);
      expect(bySdk).toBeDefined();
      expect({ ...direct, id: undefined, data: undefined }).toEqual({
        ...bySdk,
        id: undefined,
        data: undefined,
      });
    }
    expect((await raw('tx-direct', 'state#0'))!.data.B).toHaveLength(300);

    // A stale counter: the lease update's condition fails, the old item comes back.
    const sdkError = await failure(sdkTransact(transaction('sdk', 0)));
    const directError = await failure(directTransact(transaction('direct', 0)));
    expect(sdkError?.name).toBe('TransactionCanceledException');
    expect(directError?.name).toBe(sdkError!.name);
    expect(directError!.$fault).toBe('client');
    const reasons = (e: typeof sdkError) =>
      (e!.CancellationReasons as { Code: string; Item?: Record<string, unknown> }[]).map((r) => ({
        ...r,
        Item: r.Item && { ...r.Item, id: undefined },
      }));
    expect(reasons(directError)).toEqual(reasons(sdkError));
    expect(reasons(directError)[1]).toMatchObject({
      Code: 'ConditionalCheckFailed',
      Item: { leaseCounter: { N: '2' }, leaseOwner: { S: 'i-1' } },
    });
  });
});
