import { PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { DeleteCommand, GetCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { StreamConsumerService } from '../src/stream-consumer/stream-consumer.service';
import { eventually, isolatedEnv, measurement, startApp, TestApp } from './support/test-app';
import { waitUntilConsumed } from './support/stream';
import { injectWireFaults } from './support/wire-faults';

const json = (value: unknown) => Buffer.from(JSON.stringify(value));

async function scanDlq(t: TestApp) {
  const { Items = [] } = await t.db.send(
    new ScanCommand({ TableName: t.config.tables.dlq, ConsistentRead: true }),
  );
  return Items;
}

async function latestOf(t: TestApp, cityId: string) {
  const r = await t.http.get(`/cities/${cityId}/latest?limit=100`);
  return r.status === 200
    ? (r.body.items as { pm25_value: number; message_id: string; timestamp: string }[])
    : [];
}

describe('the shard consumer (real emulators)', () => {
  const env = isolatedEnv({ KINESIS_SHARD_COUNT: '1' });
  let t: TestApp;

  beforeAll(async () => {
    t = await startApp(env);
  });
  afterAll(() => t?.close());

  it('dead-letters poison records with reason and payload, and stores the valid records around them', async () => {
    const invalidUtf8 = Buffer.from([0x7b, 0xff, 0xfe, 0x7d]);
    await t.kinesis.send(
      new PutRecordsCommand({
        StreamName: t.config.stream.name,
        Records: [
          { PartitionKey: 'poison', Data: json(measurement({ city_id: 'poison', pm25_value: 1 })) },
          { PartitionKey: 'poison', Data: Buffer.from('this is not json') },
          {
            PartitionKey: 'poison',
            Data: json(measurement({ city_id: 'poison', pm25_value: -5 })),
          },
          { PartitionKey: 'poison', Data: invalidUtf8 },
          { PartitionKey: 'poison', Data: json(measurement({ city_id: 'poison', pm25_value: 2 })) },
        ],
      }),
    );
    const entries = await eventually(async () => {
      const items = await scanDlq(t);
      return items.length === 3 ? items : undefined;
    }, 'three DLQ entries');
    const byPayload = (text: string) => entries.find((e) => e.payload === text);
    expect(byPayload('this is not json')).toMatchObject({
      reason: 'parse_error',
      status: 'pending',
      attempts: 1,
      stream: t.config.stream.name,
      shard_id: 'shardId-000000000000',
      partition_key: 'poison',
      payload_encoding: 'utf8',
      sequence_number: expect.stringMatching(/^\d+$/),
    });
    const invalid = entries.find((e) => e.reason === 'validation_error');
    expect(invalid?.error_message).toMatch(/pm25_value/);
    expect(JSON.parse(invalid?.payload)).toMatchObject({ pm25_value: -5 });
    expect(byPayload(invalidUtf8.toString('base64'))).toMatchObject({
      reason: 'parse_error',
      payload_encoding: 'base64',
    });

    const stored = await eventually(async () => {
      const items = await latestOf(t, 'poison');
      return items.length === 2 ? items : undefined;
    }, 'both valid records');
    expect(stored.map((m) => m.pm25_value).sort()).toEqual([1, 2]);
  });

  it('dead-letters as processing_error a record DynamoDB refuses, and one whose JSON nests too deep, storing the rest', async () => {
    // DynamoDB refuses every write that holds the city's item, as it refuses an item too large.
    const stop = injectWireFaults(t.dynamoDb, ({ operation, input }) => {
      const requests = (input.RequestItems?.[t.config.tables.realtime] ?? []) as {
        PutRequest?: { Item?: { city_id?: { S?: string } } };
      }[];
      return operation === 'BatchWriteItem' &&
        requests.some((r) => r.PutRequest?.Item?.city_id?.S === 'unstorable')
        ? { status: 400, type: 'ValidationException', message: 'injected: item too large' }
        : undefined;
    });
    try {
      const deep = `{"city_id":"deep","city_name":${'['.repeat(50_000)}${']'.repeat(50_000)}}`;
      await t.kinesis.send(
        new PutRecordsCommand({
          StreamName: t.config.stream.name,
          Records: [
            {
              PartitionKey: 'around',
              Data: json(measurement({ city_id: 'around', pm25_value: 1 })),
            },
            { PartitionKey: 'unstorable', Data: json(measurement({ city_id: 'unstorable' })) },
            { PartitionKey: 'deep', Data: Buffer.from(deep) },
            {
              PartitionKey: 'around',
              Data: json(measurement({ city_id: 'around', pm25_value: 2 })),
            },
          ],
        }),
      );
      const entries = await eventually(async () => {
        const items = await scanDlq(t);
        const mine = items.filter(
          (e) => e.partition_key === 'unstorable' || e.partition_key === 'deep',
        );
        return mine.length === 2 ? mine : undefined;
      }, 'two more DLQ entries');
      const byKey = Object.fromEntries(entries.map((e) => [e.partition_key, e]));
      expect(byKey.unstorable).toMatchObject({
        reason: 'processing_error',
        error_message: expect.stringMatching(/ValidationException/),
      });
      expect(JSON.parse(byKey.unstorable.payload)).toMatchObject({ city_id: 'unstorable' });
      expect(byKey.deep.reason).toMatch(/^(validation_error|processing_error)$/);
      expect(byKey.deep.payload).toBe(deep);
      const stored = await eventually(async () => {
        const items = await latestOf(t, 'around');
        return items.length === 2 ? items : undefined;
      }, 'the records around them');
      expect(stored.map((m) => m.pm25_value).sort()).toEqual([1, 2]);
    } finally {
      stop();
    }
  });
});

describe('restart on the same stream and tables', () => {
  const env = isolatedEnv({ KINESIS_SHARD_COUNT: '1' });

  it('resumes after the checkpoint: no record lost, none processed again', async () => {
    const first = await startApp(env);
    await first.http
      .post('/measurements')
      .send([1, 2, 3].map((v) => measurement({ city_id: 'restart', pm25_value: v })))
      .expect(202);
    await first.kinesis.send(
      new PutRecordsCommand({
        StreamName: env.KINESIS_STREAM_NAME,
        Records: [{ PartitionKey: 'restart', Data: Buffer.from('poison') }],
      }),
    );
    await waitUntilConsumed(first);
    const dlqBefore =
      (await first.db.send(new ScanCommand({ TableName: env.DYNAMODB_DLQ_TABLE }))).Items ?? [];
    expect(dlqBefore).toHaveLength(1);
    const stored = await latestOf(first, 'restart');
    expect(stored).toHaveLength(3);
    // Remove one stored item: if the restarted consumer read the old records again, it would come back.
    const removed = stored.find((m) => m.pm25_value === 2)!;
    await first.db.send(
      new DeleteCommand({
        TableName: env.DYNAMODB_REALTIME_TABLE,
        Key: { city_id: 'restart', sk: `${removed.timestamp}#${removed.message_id}` },
      }),
    );
    await first.close();
    const released = await startApp({ ...env, CONSUMER_ENABLED: 'false' });
    const leaseAfterStop = await released.db.send(
      new GetCommand({
        TableName: env.DYNAMODB_LEASE_TABLE,
        Key: { leaseKey: 'shardId-000000000000' },
      }),
    );
    await released.close();
    expect(leaseAfterStop.Item).toMatchObject({
      leaseOwner: null,
      checkpoint: expect.stringMatching(/^\d+$/),
    });

    const second = await startApp(env);
    try {
      await second.http
        .post('/measurements')
        .send(measurement({ city_id: 'restart', pm25_value: 4 }))
        .expect(202);
      const after = await eventually(async () => {
        const items = await latestOf(second, 'restart');
        return items.some((m) => m.pm25_value === 4) ? items : undefined;
      }, 'the record sent after the restart');
      await waitUntilConsumed(second);
      expect((await latestOf(second, 'restart')).map((m) => m.pm25_value).sort()).toEqual([
        1, 3, 4,
      ]);
      expect(after.find((m) => m.pm25_value === 2)).toBeUndefined();
      const dlqAfter =
        (await second.db.send(new ScanCommand({ TableName: env.DYNAMODB_DLQ_TABLE }))).Items ?? [];
      expect(dlqAfter).toEqual(dlqBefore);
      const lease = await second.db.send(
        new GetCommand({
          TableName: env.DYNAMODB_LEASE_TABLE,
          Key: { leaseKey: 'shardId-000000000000' },
        }),
      );
      expect(lease.Item!.leaseCounter).toBeGreaterThan(leaseAfterStop.Item!.leaseCounter);
      expect(lease.Item).toMatchObject({
        leaseOwner: second.app.get(StreamConsumerService).status().owner,
        parentShardIds: [],
      });
    } finally {
      await second.close();
    }
  });
});
