import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { KinesisClient } from '@aws-sdk/client-kinesis';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { Agent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';

/** Where the clients connect; `credentials` is set only for the embedded emulators. */
export interface AwsEndpoints {
  region: string;
  kinesis?: string;
  dynamoDb?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

/** A call that has not answered after this long fails with a TimeoutError (and is retried). */
export const REQUEST_TIMEOUT_MS = { kinesis: 10_000, dynamoDb: 5_000 };

// HTTP/1.1 with keep-alive: the Kinesis client's default HTTP/2 handler fails against kinesalite,
// and pooled sockets keep the per-call latency at a few milliseconds. Without
// throwOnRequestTimeout the handler only logs a warning and a call to a frozen server hangs.
function httpHandler(requestTimeout: number): NodeHttpHandler {
  const options = { keepAlive: true, maxSockets: 128 };
  return new NodeHttpHandler({
    httpAgent: new Agent(options),
    httpsAgent: new HttpsAgent(options),
    connectionTimeout: 3000,
    requestTimeout,
    throwOnRequestTimeout: true,
  });
}

export function createKinesisClient(endpoints: AwsEndpoints): KinesisClient {
  return new KinesisClient({
    region: endpoints.region,
    endpoint: endpoints.kinesis,
    credentials: endpoints.credentials,
    requestHandler: httpHandler(REQUEST_TIMEOUT_MS.kinesis),
    // The producer and the consumer run their own retry loops with deadlines.
    maxAttempts: 1,
  });
}

export function createDynamoDbClient(endpoints: AwsEndpoints): DynamoDBClient {
  return new DynamoDBClient({
    region: endpoints.region,
    endpoint: endpoints.dynamoDb,
    credentials: endpoints.credentials,
    requestHandler: httpHandler(REQUEST_TIMEOUT_MS.dynamoDb),
    maxAttempts: 3,
  });
}

/**
 * How items are marshalled: by the document client, and for the calls sent directly. Frozen,
 * and the document client gets a copy: it sets `convertTopLevelContainer` on the options it is
 * given, which would wrap every directly marshalled item in an `M`.
 */
export const DOCUMENT_MARSHALLING = Object.freeze({
  removeUndefinedValues: true,
  convertClassInstanceToMap: false,
});

export function createDocumentClient(client: DynamoDBClient): DynamoDBDocumentClient {
  return DynamoDBDocumentClient.from(client, {
    marshallOptions: { ...DOCUMENT_MARSHALLING },
    unmarshallOptions: { wrapNumbers: false },
  });
}
