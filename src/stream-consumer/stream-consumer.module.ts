import { Module } from '@nestjs/common';
import { AggregationModule } from '../aggregation/aggregation.module';
import { IngestionModule } from '../ingestion/ingestion.module';
import { SpeedLayerModule } from '../speed-layer/speed-layer.module';
import { DlqController } from './dlq.controller';
import { DlqService } from './dlq.service';
import { DeadLetterRepository } from './dead-letter.repository';
import { LeaseRepository } from './lease.repository';
import { ShardCommitRepository } from './shard-commit.repository';
import { streamConsumerProviders } from './stream-consumer.providers';
import { StreamConsumerService } from './stream-consumer.service';

@Module({
  imports: [SpeedLayerModule, IngestionModule, AggregationModule],
  controllers: [DlqController],
  providers: [
    LeaseRepository,
    ShardCommitRepository,
    DeadLetterRepository,
    ...streamConsumerProviders,
    StreamConsumerService,
    DlqService,
  ],
  exports: [StreamConsumerService, DeadLetterRepository],
})
export class StreamConsumerModule {}
