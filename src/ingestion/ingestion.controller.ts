import { Body, Controller, HttpCode, HttpStatus, Post, UseGuards } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBadRequestResponse,
  ApiBody,
  ApiExtraModels,
  ApiOperation,
  ApiPayloadTooLargeResponse,
  ApiSecurity,
  ApiServiceUnavailableResponse,
  ApiUnauthorizedResponse,
  ApiTags,
  ApiTooManyRequestsResponse,
  getSchemaPath,
} from '@nestjs/swagger';
import { API_KEY_SCHEME, ApiKeyGuard } from '../common/api-key.guard';
import { WriteThrottlerGuard } from '../common/write-throttler.guard';
import {
  ErrorResponseDto,
  RATE_LIMITED_HEADERS,
  RETRY_AFTER_HEADER,
} from '../common/dto/error-response.dto';
import { MeasurementDto } from '../common/dto/measurement.dto';
import { IngestionResultDto } from './dto/ingestion-result.dto';
import { IngestionResult, IngestionService } from './ingestion.service';

@ApiTags('ingestion')
@ApiExtraModels(MeasurementDto)
@Controller('measurements')
export class IngestionController {
  constructor(private readonly ingestion: IngestionService) {}

  @Post()
  @UseGuards(ApiKeyGuard, WriteThrottlerGuard)
  @ApiTooManyRequestsResponse({
    type: ErrorResponseDto,
    description: 'over RATE_LIMIT_PER_MINUTE (code `rate_limited`); see Retry-After',
    headers: RATE_LIMITED_HEADERS,
  })
  @ApiSecurity(API_KEY_SCHEME)
  @ApiUnauthorizedResponse({
    type: ErrorResponseDto,
    description: 'API_KEYS is set and X-API-Key is missing or wrong',
  })
  @HttpCode(HttpStatus.ACCEPTED)
  @ApiOperation({
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
  @ApiBadRequestResponse({
    type: ErrorResponseDto,
    description: 'validation errors, with `[i].` for batch items',
  })
  @ApiPayloadTooLargeResponse({ type: ErrorResponseDto, description: 'body over 1 MB' })
  @ApiServiceUnavailableResponse({
    type: ErrorResponseDto,
    description:
      'Kinesis did not acknowledge in time (code `stream_unavailable`), the buffer is full ' +
      '(`buffer_full`) or the instance is shutting down (`shutting_down`); see Retry-After',
    headers: RETRY_AFTER_HEADER,
  })
  create(@Body() body: unknown): Promise<IngestionResult> {
    return this.ingestion.ingestBody(body);
  }
}
