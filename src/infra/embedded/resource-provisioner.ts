import {
  CreateTableCommand,
  CreateTableCommandInput,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  DynamoDBClient,
  ResourceInUseException,
  ResourceNotFoundException as TableNotFound,
  UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  KinesisClient,
  ResourceInUseException as StreamInUse,
  ResourceNotFoundException as StreamNotFound,
} from '@aws-sdk/client-kinesis';
import { AwsEndpoints, createDynamoDbClient, createKinesisClient } from '../aws/aws-clients';

export interface ResourceNames {
  stream: { name: string; shardCount: number };
  tables: { realtime: string; aggregates: string; dlq: string; leases: string };
}

export const TTL_ATTRIBUTE = 'ttl';
const READY_TIMEOUT_MS = 120_000;

function keyTable(name: string, hash: string, range?: string): CreateTableCommandInput {
  return {
    TableName: name,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [
      { AttributeName: hash, AttributeType: 'S' },
      ...(range ? [{ AttributeName: range, AttributeType: 'S' as const }] : []),
    ],
    KeySchema: [
      { AttributeName: hash, KeyType: 'HASH' },
      ...(range ? [{ AttributeName: range, KeyType: 'RANGE' as const }] : []),
    ],
  };
}

/** The four tables of SPEC §4 with their keys; the realtime table expires items through `ttl`. */
export function tableDefinitions(names: ResourceNames): CreateTableCommandInput[] {
  return [
    keyTable(names.tables.realtime, 'city_id', 'sk'),
    keyTable(names.tables.aggregates, 'city_id', 'window_key'),
    {
      ...keyTable(names.tables.dlq, 'id'),
      AttributeDefinitions: [
        { AttributeName: 'id', AttributeType: 'S' },
        { AttributeName: 'kind', AttributeType: 'S' },
        { AttributeName: 'failed_at', AttributeType: 'S' },
      ],
      // Newest first for GET /dlq; only entries carry `kind`, so redrive pointers stay out of it.
      GlobalSecondaryIndexes: [
        {
          IndexName: 'by_failed_at',
          KeySchema: [
            { AttributeName: 'kind', KeyType: 'HASH' },
            { AttributeName: 'failed_at', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'ALL' },
        },
      ],
    },
    keyTable(names.tables.leases, 'leaseKey'),
  ];
}

async function poll<T>(what: string, read: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what} did not become ACTIVE in time`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Creates the stream and the tables when missing, with clients of its own that it closes after;
 * safe to run from several instances at once.
 */
export async function provisionResources(
  endpoints: AwsEndpoints,
  names: ResourceNames,
): Promise<void> {
  const kinesis = createKinesisClient(endpoints);
  const dynamoDb = createDynamoDbClient(endpoints);
  try {
    await provision(kinesis, dynamoDb, names);
  } finally {
    kinesis.destroy();
    dynamoDb.destroy();
  }
}

async function provision(kinesis: KinesisClient, dynamoDb: DynamoDBClient, names: ResourceNames) {
  await Promise.all([
    provisionStream(kinesis, names.stream.name, names.stream.shardCount),
    ...tableDefinitions(names).map((definition) => provisionTable(dynamoDb, definition)),
  ]);
  await enableTtl(dynamoDb, names.tables.realtime);
}

async function provisionStream(kinesis: KinesisClient, name: string, shardCount: number) {
  try {
    await kinesis.send(new CreateStreamCommand({ StreamName: name, ShardCount: shardCount }));
  } catch (error) {
    if (!(error instanceof StreamInUse)) throw error;
  }
  await poll(`stream ${name}`, async () => {
    try {
      const { StreamDescriptionSummary: s } = await kinesis.send(
        new DescribeStreamSummaryCommand({ StreamName: name }),
      );
      return s?.StreamStatus === 'ACTIVE' || s?.StreamStatus === 'UPDATING' ? true : undefined;
    } catch (error) {
      if (error instanceof StreamNotFound) return undefined;
      throw error;
    }
  });
}

async function provisionTable(dynamoDb: DynamoDBClient, definition: CreateTableCommandInput) {
  try {
    await dynamoDb.send(new CreateTableCommand(definition));
  } catch (error) {
    if (!(error instanceof ResourceInUseException)) throw error;
  }
  await poll(`table ${definition.TableName}`, async () => {
    try {
      const { Table } = await dynamoDb.send(
        new DescribeTableCommand({ TableName: definition.TableName }),
      );
      return Table?.TableStatus === 'ACTIVE' ? true : undefined;
    } catch (error) {
      if (error instanceof TableNotFound) return undefined;
      throw error;
    }
  });
}

async function enableTtl(dynamoDb: DynamoDBClient, tableName: string) {
  const { TimeToLiveDescription } = await dynamoDb.send(
    new DescribeTimeToLiveCommand({ TableName: tableName }),
  );
  const status = TimeToLiveDescription?.TimeToLiveStatus;
  if (status === 'ENABLED' || status === 'ENABLING') return;
  await dynamoDb.send(
    new UpdateTimeToLiveCommand({
      TableName: tableName,
      TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true },
    }),
  );
}
