import { Module } from '@nestjs/common';
import { ScheduleModule } from '@nestjs/schedule';
import { ThrottlerModule } from '@nestjs/throttler';
import { LoggerModule } from 'nestjs-pino';
import { CursorModule } from './common/cursor.module';
import { LoggingModule } from './common/logging.module';
import { ROOT_LOGGER } from './common/logging.tokens';
import { loggerParams } from './common/request-logging';
import { AppConfig } from './config/app.config';
import { APP_CONFIG } from './config/config.tokens';
import { ConfigModule } from './config/config.module';
import { DashboardModule } from './dashboard/dashboard.module';
import { HealthModule } from './health/health.module';
import { AwsModule } from './infra/aws/aws.module';
import { IngestionModule } from './ingestion/ingestion.module';
import { MetricsModule } from './metrics/metrics.module';
import { SpeedLayerModule } from './speed-layer/speed-layer.module';
import { StreamConsumerModule } from './stream-consumer/stream-consumer.module';

@Module({
  imports: [
    ConfigModule,
    CursorModule,
    LoggingModule,
    LoggerModule.forRootAsync({
      imports: [LoggingModule],
      inject: [ROOT_LOGGER],
      useFactory: loggerParams,
    }),
    ScheduleModule.forRoot(),
    MetricsModule,
    ThrottlerModule.forRootAsync({
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig) => ({
        // Named 'default', the throttler sends the plain Retry-After and X-RateLimit-* headers.
        throttlers: [
          { name: 'default', ttl: 60_000, limit: Math.max(1, config.rateLimitPerMinute) },
        ],
        skipIf: () => config.rateLimitPerMinute === 0,
        errorMessage: 'too many write requests: retry after the number of seconds in Retry-After',
      }),
    }),
    AwsModule,
    IngestionModule,
    StreamConsumerModule,
    SpeedLayerModule,
    HealthModule,
    DashboardModule,
  ],
})
export class AppModule {}
