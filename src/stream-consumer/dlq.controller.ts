import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  HttpStatus,
  Param,
  Post,
  Query,
  UseGuards,
} from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBadRequestResponse,
  ApiBody,
  ApiConflictResponse,
  ApiExtraModels,
  ApiNoContentResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiSecurity,
  ApiTags,
  ApiUnauthorizedResponse,
  getSchemaPath,
} from '@nestjs/swagger';
import { API_KEY_SCHEME, ApiKeyGuard } from '../common/api-key.guard';
import { WriteThrottlerGuard } from '../common/write-throttler.guard';
import { ErrorResponseDto } from '../common/dto/error-response.dto';
import { MeasurementDto } from '../common/dto/measurement.dto';
import { DlqService } from './dlq.service';
import {
  DlqEntryDto,
  DlqIdParamsDto,
  DlqListDto,
  DlqListQueryDto,
  RedriveResultDto,
} from './dto/dlq.dto';

@ApiTags('dead-letter queue')
@ApiSecurity(API_KEY_SCHEME)
@ApiUnauthorizedResponse({
  type: ErrorResponseDto,
  description: 'API_KEYS is set and X-API-Key is missing or wrong',
})
@ApiExtraModels(MeasurementDto)
@UseGuards(ApiKeyGuard)
@Controller('dlq')
export class DlqController {
  constructor(private readonly dlq: DlqService) {}

  @Get()
  @ApiOperation({
    summary: 'Dead-letter entries, newest first, with a cursor and an optional reason filter',
  })
  @ApiOkResponse({ type: DlqListDto })
  @ApiBadRequestResponse({ type: ErrorResponseDto })
  list(@Query() query: DlqListQueryDto) {
    return this.dlq.list(query.limit, query.reason, query.cursor);
  }

  @Get(':id')
  @ApiOperation({ summary: 'One entry, with its payload as received' })
  @ApiOkResponse({ type: DlqEntryDto })
  @ApiNotFoundResponse({ type: ErrorResponseDto })
  get(@Param() params: DlqIdParamsDto) {
    return this.dlq.get(params.id);
  }

  @Post(':id/redrive')
  @UseGuards(WriteThrottlerGuard)
  @HttpCode(HttpStatus.ACCEPTED)
  @ApiOperation({
    summary: 'Put the record back on the stream, as received or corrected',
    description:
      'Without a body the stored payload is sent again. With `{ "payload": measurement }` the corrected ' +
      'measurement is validated like POST /measurements and sent instead. If it fails again, the entry comes ' +
      'back as pending with attempts + 1.',
  })
  @ApiBody({
    required: false,
    schema: { type: 'object', properties: { payload: { $ref: getSchemaPath(MeasurementDto) } } },
  })
  @ApiAcceptedResponse({ type: RedriveResultDto })
  @ApiBadRequestResponse({ type: ErrorResponseDto })
  @ApiNotFoundResponse({ type: ErrorResponseDto })
  @ApiConflictResponse({
    type: ErrorResponseDto,
    description: 'the stored payload was truncated: send a corrected one',
  })
  redrive(@Param() params: DlqIdParamsDto, @Body() body: unknown) {
    return this.dlq.redrive(params.id, body);
  }

  @Delete(':id')
  @UseGuards(WriteThrottlerGuard)
  @HttpCode(HttpStatus.NO_CONTENT)
  @ApiOperation({ summary: 'Delete an entry' })
  @ApiNoContentResponse()
  @ApiNotFoundResponse({ type: ErrorResponseDto })
  async delete(@Param() params: DlqIdParamsDto): Promise<void> {
    await this.dlq.delete(params.id);
  }
}
