import { Module } from '@nestjs/common';
import { HealthModule } from '../health/health.module';
import { SpeedLayerModule } from '../speed-layer/speed-layer.module';
import { StreamConsumerModule } from '../stream-consumer/stream-consumer.module';
import { DashboardController } from './dashboard.controller';
import { DashboardFeed } from './dashboard-feed.service';
import { PipelineMonitor } from './pipeline-monitor.service';

@Module({
  imports: [SpeedLayerModule, StreamConsumerModule, HealthModule],
  controllers: [DashboardController],
  providers: [DashboardFeed, PipelineMonitor],
})
export class DashboardModule {}
