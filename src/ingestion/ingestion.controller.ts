import { Body, Controller, HttpCode, HttpStatus, Post, UseGuards } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBody,
  ApiExtraModels,
  ApiOperation,
  ApiSecurity,
  ApiTags,
  getSchemaPath,
} from '@nestjs/swagger';
import { API_KEY_SCHEME, ApiKeyGuard } from '../common/api-key.guard';
import { WriteThrottlerGuard } from '../common/write-throttler.guard';
import { MeasurementDto } from '../common/dto/measurement.dto';
import { ApiErrors } from '../common/openapi';
import { IngestionResultDto } from './dto/ingestion-result.dto';
import { IngestionResult, IngestionService } from './ingestion.service';

@ApiTags('ingestion')
@ApiExtraModels(MeasurementDto)
@Controller('measurements')
export class IngestionController {
  constructor(private readonly ingestion: IngestionService) {}

  @Post()
  @UseGuards(ApiKeyGuard, WriteThrottlerGuard)
  @ApiSecurity(API_KEY_SCHEME)
  @HttpCode(HttpStatus.ACCEPTED)
  @ApiOperation({
    operationId: 'postMeasurements',
    summary: 'Put one measurement or a batch of up to 500 on the stream',
    description:
      'All-or-nothing: if any item is invalid, nothing is sent. 202 only after Kinesis acknowledged every record. ' +
      'Resending the same body is safe: a measurement is identified by its message id.',
  })
  @ApiBody({
    schema: {
      oneOf: [
        { $ref: getSchemaPath(MeasurementDto) },
        {
          type: 'array',
          minItems: 1,
          maxItems: 500,
          items: { $ref: getSchemaPath(MeasurementDto) },
        },
      ],
    },
    examples: {
      one: {
        value: {
          city_id: 'delhi',
          city_name: 'Delhi',
          timestamp: '2026-11-26T08:00:00Z',
          pm25_value: 42.5,
          pm10_value: 80.1,
          temperature_c: 18.4,
        },
      },
    },
  })
  @ApiAcceptedResponse({ type: IngestionResultDto })
  @ApiErrors(
    [
      400,
      'invalid JSON (`malformed_json`) or invalid measurements (`validation_failed`, with `[i].` for batch items); nothing was sent',
    ],
    401,
    413,
    415,
    429,
    [
      503,
      'Kinesis did not acknowledge in time (`stream_unavailable`), the buffer is full (`buffer_full`) or the instance is shutting down (`shutting_down`); resending the same body is safe; see Retry-After',
    ],
  )
  create(@Body() body: unknown): Promise<IngestionResult> {
    return this.ingestion.ingestBody(body);
  }
}
