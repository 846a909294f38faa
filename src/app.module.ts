import { Module } from '@nestjs/common';
import { ConfigModule } from './config/config.module';
import { HealthModule } from './health/health.module';
import { AwsModule } from './infra/aws/aws.module';
import { IngestionModule } from './ingestion/ingestion.module';
import { MetricsModule } from './metrics/metrics.module';
import { SpeedLayerModule } from './speed-layer/speed-layer.module';
import { StreamConsumerModule } from './stream-consumer/stream-consumer.module';

@Module({
  imports: [
    ConfigModule,
    MetricsModule,
    AwsModule,
    IngestionModule,
    StreamConsumerModule,
    SpeedLayerModule,
    HealthModule,
  ],
})
export class AppModule {}
