import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { StreamConsumerModule } from '../stream-consumer/stream-consumer.module';
import { HealthController } from './health.controller';
import { ResourcesHealthIndicator } from './resources.health';

@Module({
  imports: [TerminusModule.forRoot({ logger: false }), StreamConsumerModule],
  controllers: [HealthController],
  providers: [ResourcesHealthIndicator],
  exports: [ResourcesHealthIndicator],
})
export class HealthModule {}
