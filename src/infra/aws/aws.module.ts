import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { KinesisClient } from '@aws-sdk/client-kinesis';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { Global, Inject, Injectable, Logger, Module, OnApplicationShutdown } from '@nestjs/common';
import { AppConfig } from '../../config/app.config';
import { APP_CONFIG } from '../../config/config.tokens';
import { EmbeddedEmulators } from '../embedded/embedded-emulators';
import { provisionResources } from '../embedded/resource-provisioner';
import {
  AwsEndpoints,
  createDocumentClient,
  createDynamoDbClient,
  createKinesisClient,
} from './aws-clients';
import {
  AWS_ENDPOINTS,
  DYNAMODB_CLIENT,
  DYNAMODB_DOCUMENT_CLIENT,
  KINESIS_CLIENT,
} from './aws.tokens';

/** Owns the embedded emulators (when BACKEND=embedded) and stops them after everything else. */
@Injectable()
export class EmbeddedBackend implements OnApplicationShutdown {
  private readonly logger = new Logger(EmbeddedBackend.name);
  private emulators?: EmbeddedEmulators;

  async endpoints(config: AppConfig): Promise<AwsEndpoints> {
    if (config.backend === 'aws') {
      return {
        region: config.aws.region,
        kinesis: config.aws.kinesisEndpoint,
        dynamoDb: config.aws.dynamoDbEndpoint,
      };
    }
    const started = Date.now();
    this.emulators = new EmbeddedEmulators({
      dataDir: config.embedded.dataDir,
      kinesisPort: config.embedded.kinesisPort,
      dynamoDbPort: config.embedded.dynamoDbPort,
      region: config.aws.region,
      log: (message) => this.logger.warn(message),
      // Never go on without our own emulator (another process may hold the port): stop cleanly.
      onUnexpectedExit: (name, code) => {
        this.logger.error(
          `${name} exited unexpectedly (code ${code}); stopping. If the log says its port was in use, another process holds EMBEDDED_KINESIS_PORT or EMBEDDED_DYNAMODB_PORT.`,
        );
        process.kill(process.pid, 'SIGTERM');
      },
    });
    const endpoints = await this.emulators.start();
    this.logger.log(
      `Embedded emulators up in ${Date.now() - started} ms: Kinesis ${endpoints.kinesis}, DynamoDB ${endpoints.dynamoDb}` +
        (config.embedded.dataDir === null
          ? ' (in memory)'
          : ` (data in ${config.embedded.dataDir})`),
    );
    return endpoints;
  }

  async onApplicationShutdown(): Promise<void> {
    await this.emulators?.stop();
  }
}

/** Closes the SDK clients' sockets once the workers have stopped. */
@Injectable()
class AwsClientsCloser implements OnApplicationShutdown {
  constructor(
    @Inject(KINESIS_CLIENT) private readonly kinesis: KinesisClient,
    @Inject(DYNAMODB_CLIENT) private readonly dynamoDb: DynamoDBClient,
  ) {}

  onApplicationShutdown(): void {
    this.kinesis.destroy();
    this.dynamoDb.destroy();
  }
}

/** The only place that constructs AWS SDK clients. */
@Global()
@Module({
  providers: [
    EmbeddedBackend,
    {
      provide: AWS_ENDPOINTS,
      inject: [APP_CONFIG, EmbeddedBackend],
      useFactory: async (config: AppConfig, backend: EmbeddedBackend) => {
        const endpoints = await backend.endpoints(config);
        if (config.provisionResources) {
          // In compose the service may start before LocalStack answers: retry for a while.
          const logger = new Logger('Provisioning');
          await provisionResources(endpoints, config, { log: (m) => logger.warn(m) });
        }
        return endpoints;
      },
    },
    {
      provide: KINESIS_CLIENT,
      inject: [AWS_ENDPOINTS],
      useFactory: (endpoints: AwsEndpoints): KinesisClient => createKinesisClient(endpoints),
    },
    {
      provide: DYNAMODB_CLIENT,
      inject: [AWS_ENDPOINTS],
      useFactory: (endpoints: AwsEndpoints): DynamoDBClient => createDynamoDbClient(endpoints),
    },
    {
      provide: DYNAMODB_DOCUMENT_CLIENT,
      inject: [DYNAMODB_CLIENT],
      useFactory: (client: DynamoDBClient): DynamoDBDocumentClient => createDocumentClient(client),
    },
    AwsClientsCloser,
  ],
  exports: [AWS_ENDPOINTS, KINESIS_CLIENT, DYNAMODB_CLIENT, DYNAMODB_DOCUMENT_CLIENT],
})
export class AwsModule {}
