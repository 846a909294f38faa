import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { HealthIndicatorService } from '@nestjs/terminus';
import { loadConfig } from '../config/app.config';
import type { PollerStatus } from '../stream-consumer/shard-poller';
import type {
  ConsumerStatus,
  StreamConsumerService,
} from '../stream-consumer/stream-consumer.service';
import { RESOURCES_CACHE_MS, ResourcesHealthIndicator } from './resources.health';

const config = loadConfig({ CONSUMER_STALL_UNREADY_MS: '1000' });
const TABLES = Object.keys(config.tables).length;

/** A client whose send() counts calls and answers with `reply()` after `delayMs` (0: at once). */
function fakeClient(reply: (input: Record<string, unknown>) => unknown) {
  const client = {
    calls: 0,
    delayMs: 0,
    send: async (command: { input: Record<string, unknown> }) => {
      client.calls += 1;
      if (client.delayMs > 0) await new Promise((r) => setTimeout(r, client.delayMs));
      const answer = reply(command.input);
      if (answer instanceof Error) throw answer;
      return answer;
    },
  };
  return client;
}

function setUp() {
  let tableStatus: unknown = 'ACTIVE';
  const kinesis = fakeClient(() => ({
    StreamDescriptionSummary: { StreamStatus: 'ACTIVE', OpenShardCount: 2 },
  }));
  const dynamoDb = fakeClient(() =>
    tableStatus instanceof Error ? tableStatus : { Table: { TableStatus: tableStatus } },
  );
  const shards: PollerStatus[] = [{ shardId: 'shardId-0', state: 'polling' }];
  const consumer = {
    status: (): ConsumerStatus => ({
      enabled: true,
      owner: 'me',
      state: 'running',
      liveInstances: 1,
      shards,
      leases: [],
      quarantined: [],
    }),
  };
  const indicator = new ResourcesHealthIndicator(
    new HealthIndicatorService(),
    kinesis as unknown as KinesisClient,
    dynamoDb as unknown as DynamoDBClient,
    config,
    consumer as unknown as StreamConsumerService,
  );
  return {
    indicator,
    kinesis,
    dynamoDb,
    shards,
    failTables: (error: Error) => (tableStatus = error),
  };
}

describe('ResourcesHealthIndicator', () => {
  let now = 1_000_000;
  beforeEach(() => {
    now = 1_000_000;
    jest.spyOn(performance, 'now').mockImplementation(() => now);
  });
  afterEach(() => jest.restoreAllMocks());

  it(`describes the stream and the tables at most once per ${RESOURCES_CACHE_MS} ms`, async () => {
    const { indicator, kinesis, dynamoDb } = setUp();
    for (let i = 0; i < 5; i++) {
      expect((await indicator.stream()).stream.status).toBe('up');
      expect((await indicator.tables()).tables.status).toBe('up');
      now += RESOURCES_CACHE_MS / 5 - 1;
    }
    expect(kinesis.calls).toBe(1);
    expect(dynamoDb.calls).toBe(TABLES);

    now += 10;
    await indicator.stream();
    await indicator.tables();
    expect(kinesis.calls).toBe(2);
    expect(dynamoDb.calls).toBe(2 * TABLES);
  });

  it('lets concurrent probes share one call in flight', async () => {
    const { indicator, kinesis, dynamoDb } = setUp();
    kinesis.delayMs = 20;
    dynamoDb.delayMs = 20;
    const results = await Promise.all(
      Array.from({ length: 10 }, () => Promise.all([indicator.stream(), indicator.tables()])),
    );
    expect(results.every(([s, t]) => s.stream.status === 'up' && t.tables.status === 'up')).toBe(
      true,
    );
    expect(kinesis.calls).toBe(1);
    expect(dynamoDb.calls).toBe(TABLES);
  });

  it('shows a failing table, with its error, once the cached answer has expired', async () => {
    const { indicator, failTables } = setUp();
    expect((await indicator.tables()).tables.status).toBe('up');
    failTables(Object.assign(new Error('throttled'), { name: 'ThrottlingException' }));
    expect((await indicator.tables()).tables.status).toBe('up');
    now += RESOURCES_CACHE_MS;
    const { tables } = await indicator.tables();
    expect(tables.status).toBe('down');
    expect(tables[config.tables.leases]).toBe('ThrottlingException');
  });

  it('reads the consumer live on every probe: a stall turns it down at once', async () => {
    const { indicator, shards } = setUp();
    expect((await indicator.stream()).stream.status).toBe('up');
    expect(indicator.consumerState().consumer.status).toBe('up');
    shards[0] = {
      shardId: 'shardId-0',
      state: 'stalled',
      stall: { since: now - 1001, on: 'commit', attempts: 3, lastError: 'TimeoutError: x' },
    } as PollerStatus;
    const { consumer } = indicator.consumerState();
    expect(consumer.status).toBe('down');
    expect(consumer.shards).toMatchObject({ 'shardId-0': { state: 'stalled', attempts: 3 } });
  });
});
