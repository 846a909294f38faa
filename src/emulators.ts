import { loadConfig, ConfigError } from './config/app.config';
import { EmbeddedEmulators, EmbeddedSetupError } from './infra/embedded/embedded-emulators';
import { provisionResources } from './infra/embedded/resource-provisioner';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/**
 * `npm run emulators`: only the embedded Kinesis and DynamoDB, provisioned, on the configured ports
 * and DATA_DIR, for several service instances (BACKEND=aws pointed at them) or for tools.
 */
async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const emulators = new EmbeddedEmulators({
    dataDir: config.embedded.dataDir,
    kinesisPort: config.embedded.kinesisPort,
    dynamoDbPort: config.embedded.dynamoDbPort,
    region: config.aws.region,
    log: (message) => process.stderr.write(`${message}\n`),
  });
  const endpoints = await emulators.start();
  const stop = () => void emulators.stop().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await provisionResources(endpoints, config, {
    log: (message) => process.stderr.write(`${message}\n`),
  });
  process.stdout.write(
    [
      `AWS_ENDPOINT_URL_KINESIS=${endpoints.kinesis}`,
      `AWS_ENDPOINT_URL_DYNAMODB=${endpoints.dynamoDb}`,
      `# stream ${config.stream.name} (${config.stream.shardCount} shards) and tables provisioned;` +
        ` data ${config.embedded.dataDir ?? 'in memory'}. Run instances with BACKEND=aws,`,
      '# AWS_ACCESS_KEY_ID=embedded AWS_SECRET_ACCESS_KEY=embedded and the two endpoints above. Ctrl-C stops.',
      '',
    ].join('\n'),
  );
}

main().catch((error: Error) => {
  process.stderr.write(
    `${
      error instanceof ConfigError || error instanceof EmbeddedSetupError
        ? error.message
        : `emulators failed: ${error.message}`
    }\n`,
  );
  process.exit(1);
});
