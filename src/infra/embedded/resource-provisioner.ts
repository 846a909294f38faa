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
import { backoffDelay, sleep } from '../../common/backoff';
import { AwsEndpoints, createDynamoDbClient, createKinesisClient } from '../aws/aws-clients';

export interface ResourceNames {
  stream: { name: string; shardCount: number };
  tables: { realtime: string; aggregates: string; dlq: string; leases: string; state: string };
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

/** The tables of SPEC §4 and the window-state table, with their keys; the realtime table expires items through `ttl`. */
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
    keyTable(names.tables.state, 'leaseKey'),
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

export interface ProvisionOptions {
  /** How long to keep retrying while the endpoints do not answer yet (LocalStack starting). */
  retryForMs?: number;
  log?: (message: string) => void;
}

export const PROVISION_RETRY_MS = 60_000;
const RETRY_POLICY = { baseMs: 250, capMs: 5_000 };
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
]);

/**
 * Whether `error` says the endpoint is not there or not ready yet (connection refused, DNS not
 * resolving yet, a timeout, a 5xx), rather than a request it rejected.
 */
export function isUnreachable(error: unknown): boolean {
  const e = error as {
    code?: string;
    name?: string;
    message?: string;
    errors?: unknown[];
    $metadata?: { httpStatusCode?: number };
  } | null;
  if (!e || typeof e !== 'object') return false;
  if (e.code && UNREACHABLE_CODES.has(e.code)) return true;
  // The SDK's retry middleware wraps errors from another realm (Jest) as "AWS SDK error wrapper
  // for Error: connect ECONNREFUSED …", keeping only the message.
  const code = /\b(E[A-Z_]+)\b/.exec(e.message ?? '')?.[1];
  if (code && UNREACHABLE_CODES.has(code)) return true;
  if (e.name === 'TimeoutError' || e.name === 'ServiceUnavailable') return true;
  if ((e.$metadata?.httpStatusCode ?? 0) >= 500) return true;
  return Array.isArray(e.errors) && e.errors.some(isUnreachable);
}

function describe(error: unknown): string {
  const e = error as { code?: string; name?: string; message?: string };
  return [e.code ?? e.name, e.message].filter(Boolean).join(': ') || String(error);
}

/**
 * Creates the stream and the tables when missing, with clients of its own that it closes after;
 * safe to run from several instances at once. While the endpoints do not answer yet it retries
 * with back-off for `retryForMs` (60 s), logging each retry, then fails with the last error.
 */
export async function provisionResources(
  endpoints: AwsEndpoints,
  names: ResourceNames,
  options: ProvisionOptions = {},
): Promise<void> {
  const deadline = Date.now() + (options.retryForMs ?? PROVISION_RETRY_MS);
  for (let attempt = 1; ; attempt++) {
    const kinesis = createKinesisClient(endpoints);
    const dynamoDb = createDynamoDbClient(endpoints);
    try {
      await provision(kinesis, dynamoDb, names);
      return;
    } catch (error) {
      const left = deadline - Date.now();
      if (!isUnreachable(error)) throw error;
      if (left <= 0) {
        throw new Error(
          `provisioning gave up after ${attempt} attempts: Kinesis ${endpoints.kinesis ?? '(AWS)'}, DynamoDB ${endpoints.dynamoDb ?? '(AWS)'} not reachable: ${describe(error)}`,
        );
      }
      const delay = Math.min(left, Math.max(100, backoffDelay(attempt, RETRY_POLICY)));
      options.log?.(
        `provisioning attempt ${attempt} failed, endpoints not reachable yet (${describe(error)}); retrying in ${delay} ms`,
      );
      await sleep(delay);
    } finally {
      kinesis.destroy();
      dynamoDb.destroy();
    }
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
