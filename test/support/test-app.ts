import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { KinesisClient } from '@aws-sdk/client-kinesis';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { NestExpressApplication } from '@nestjs/platform-express';
import { Test } from '@nestjs/testing';
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { AppModule } from '../../src/app.module';
import { configureApp } from '../../src/app.setup';
import { AppConfig, loadConfig } from '../../src/config/app.config';
import { APP_CONFIG } from '../../src/config/config.tokens';
import {
  DYNAMODB_CLIENT,
  DYNAMODB_DOCUMENT_CLIENT,
  KINESIS_CLIENT,
} from '../../src/infra/aws/aws.tokens';
import { OpenApiDocument, recordResponses } from './response-audit';

export interface TestApp {
  app: NestExpressApplication;
  http: ReturnType<typeof request>;
  config: AppConfig;
  kinesis: KinesisClient;
  dynamoDb: DynamoDBClient;
  db: DynamoDBDocumentClient;
  close(): Promise<void>;
}

/** Stream and table names of their own for one test file, on the run's shared emulators. */
export function isolatedEnv(overrides: Record<string, string> = {}): Record<string, string> {
  const id = `e2e-${randomBytes(4).toString('hex')}`;
  return {
    BACKEND: 'aws',
    AWS_ENDPOINT_URL_KINESIS: process.env.E2E_KINESIS_ENDPOINT!,
    AWS_ENDPOINT_URL_DYNAMODB: process.env.E2E_DYNAMODB_ENDPOINT!,
    AWS_REGION: 'us-east-1',
    PROVISION_RESOURCES: 'true',
    KINESIS_STREAM_NAME: `${id}-stream`,
    KINESIS_SHARD_COUNT: '2',
    DYNAMODB_REALTIME_TABLE: `${id}-realtime`,
    DYNAMODB_AGGREGATES_TABLE: `${id}-aggregates`,
    DYNAMODB_DLQ_TABLE: `${id}-dlq`,
    DYNAMODB_LEASE_TABLE: `${id}-leases`,
    DYNAMODB_STATE_TABLE: `${id}-state`,
    SIMULATOR_ENABLED: 'false',
    PRODUCER_LINGER_MS: '5',
    LOG_LEVEL: 'error',
    ...overrides,
  };
}

/** The real AppModule over HTTP on loopback, configured by `env` alone. */
export async function startApp(env: Record<string, string>): Promise<TestApp> {
  const config = loadConfig(env);
  const moduleRef = await Test.createTestingModule({ imports: [AppModule] })
    .overrideProvider(APP_CONFIG)
    .useValue(config)
    .compile();
  const app = moduleRef.createNestApplication<NestExpressApplication>({
    bodyParser: false,
    logger: ['error', 'warn'].includes(env.LOG_LEVEL ?? '') ? ['error'] : false,
  });
  // Its responses are checked against the OpenAPI document it publishes (see response-audit).
  let publish!: (document: OpenApiDocument) => void;
  const document = new Promise<OpenApiDocument>((resolve) => (publish = resolve));
  app.use(recordResponses(() => document));
  configureApp(app);
  await app.init();
  const docs = await request(app.getHttpServer()).get('/docs-json').expect(200);
  publish(docs.body as OpenApiDocument);
  const server = app.getHttpServer();
  return {
    app,
    http: request(server),
    config,
    kinesis: app.get(KINESIS_CLIENT),
    dynamoDb: app.get(DYNAMODB_CLIENT),
    db: app.get(DYNAMODB_DOCUMENT_CLIENT),
    close: () => app.close(),
  };
}

/** Polls `probe` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  probe: () => Promise<T | undefined>,
  what: string,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

let counter = 0;

/** A valid measurement, unique per call unless `overrides` fix its identity. */
export function measurement(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  counter += 1;
  return {
    city_id: 'test-city',
    city_name: 'Test City',
    timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, 0, 0) + counter * 1000).toISOString(),
    pm25_value: 12,
    pm10_value: 80,
    temperature_c: 21.5,
    ...overrides,
  };
}
