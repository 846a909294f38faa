import { Module } from '@nestjs/common';
import { IngestionController } from './ingestion.controller';
import { IngestionService } from './ingestion.service';
import { KinesisProducerService } from './kinesis-producer.service';
import { SimulatorService } from './simulator/simulator.service';

@Module({
  controllers: [IngestionController],
  providers: [KinesisProducerService, IngestionService, SimulatorService],
  exports: [IngestionService, KinesisProducerService],
})
export class IngestionModule {}
