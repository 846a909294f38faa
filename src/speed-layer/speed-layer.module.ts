import { Module } from '@nestjs/common';
import { SpeedLayerController } from './speed-layer.controller';
import { SpeedLayerRepository } from './speed-layer.repository';

@Module({
  controllers: [SpeedLayerController],
  providers: [SpeedLayerRepository],
  exports: [SpeedLayerRepository],
})
export class SpeedLayerModule {}
