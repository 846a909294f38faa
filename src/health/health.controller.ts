import { Controller, Get } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
import { ResourcesHealthIndicator } from './resources.health';

@ApiTags('health')
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly resources: ResourcesHealthIndicator,
  ) {}

  @Get('live')
  @HealthCheck()
  @ApiOperation({ operationId: 'getLiveness', summary: '200 while the process runs' })
  live() {
    return this.health.check([]);
  }

  @Get('ready')
  @HealthCheck()
  @ApiOperation({
    operationId: 'getReadiness',
    summary: '503 unless the stream is ACTIVE, the tables answer and the consumer runs',
  })
  ready() {
    return this.health.check([
      () => this.resources.stream(),
      () => this.resources.tables(),
      () => this.resources.consumerState(),
    ]);
  }
}
