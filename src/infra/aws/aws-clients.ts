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

// HTTP/1.1 with keep-alive: the Kinesis client's default HTTP/2 handler fails against kinesalite,
// and pooled sockets keep the per-call latency at a few milliseconds.
function httpHandler(): NodeHttpHandler {
  const options = { keepAlive: true, maxSockets: 128 };
  return new NodeHttpHandler({
    httpAgent: new Agent(options),
    httpsAgent: new HttpsAgent(options),
    connectionTimeout: 3000,
    // Short enough that a hung call cannot hold a shutdown or a producer deadline for long.
    requestTimeout: 10_000,
  });
}

export function createKinesisClient(endpoints: AwsEndpoints): KinesisClient {
  return new KinesisClient({
    region: endpoints.region,
    endpoint: endpoints.kinesis,
    credentials: endpoints.credentials,
    requestHandler: httpHandler(),
    // The producer and the consumer run their own retry loops with deadlines.
    maxAttempts: 1,
  });
}

export function createDynamoDbClient(endpoints: AwsEndpoints): DynamoDBClient {
  return new DynamoDBClient({
    region: endpoints.region,
    endpoint: endpoints.dynamoDb,
    credentials: endpoints.credentials,
    requestHandler: httpHandler(),
    maxAttempts: 3,
  });
}

export function createDocumentClient(client: DynamoDBClient): DynamoDBDocumentClient {
  return DynamoDBDocumentClient.from(client, {
    marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: false },
    unmarshallOptions: { wrapNumbers: false },
  });
}
