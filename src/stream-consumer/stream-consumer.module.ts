import { Module } from '@nestjs/common';
import { SpeedLayerModule } from '../speed-layer/speed-layer.module';
import { DeadLetterRepository } from './dead-letter.repository';
import { LeaseRepository } from './lease.repository';
import { StreamConsumerService } from './stream-consumer.service';

@Module({
  imports: [SpeedLayerModule],
  providers: [LeaseRepository, DeadLetterRepository, StreamConsumerService],
  exports: [StreamConsumerService],
})
export class StreamConsumerModule {}
