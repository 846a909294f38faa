import { Module } from '@nestjs/common';
import { AggregatesController } from './aggregates.controller';
import { AggregatesRepository } from './aggregates.repository';

@Module({
  controllers: [AggregatesController],
  providers: [AggregatesRepository],
  exports: [AggregatesRepository],
})
export class AggregationModule {}
