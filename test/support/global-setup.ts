import { EmbeddedEmulators } from '../../src/infra/embedded/embedded-emulators';

/** One in-memory emulator pair for the whole run; each test file uses its own stream and tables. */
export default async function globalSetup(): Promise<void> {
  const emulators = new EmbeddedEmulators({ dataDir: null, kinesisPort: 0, dynamoDbPort: 0 });
  const endpoints = await emulators.start();
  (globalThis as { __EMULATORS__?: EmbeddedEmulators }).__EMULATORS__ = emulators;
  process.env.E2E_KINESIS_ENDPOINT = endpoints.kinesis;
  process.env.E2E_DYNAMODB_ENDPOINT = endpoints.dynamoDb;
  process.env.AWS_ACCESS_KEY_ID = 'e2e';
  process.env.AWS_SECRET_ACCESS_KEY = 'e2e';
  process.env.AWS_REGION = 'us-east-1';
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
}
