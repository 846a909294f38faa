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
  ApiBody,
  ApiExtraModels,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiSecurity,
  ApiTags,
  getSchemaPath,
} from '@nestjs/swagger';
import { API_KEY_SCHEME, ApiKeyGuard } from '../common/api-key.guard';
import { WriteThrottlerGuard } from '../common/write-throttler.guard';
import { MeasurementDto } from '../common/dto/measurement.dto';
import { ApiErrors } from '../common/openapi';
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
@ApiErrors(401)
@ApiExtraModels(MeasurementDto)
@UseGuards(ApiKeyGuard)
@Controller('dlq')
export class DlqController {
  constructor(private readonly dlq: DlqService) {}

  @Get()
  @ApiOperation({
    operationId: 'listDeadLetters',
    summary: 'Dead-letter entries, newest first, with a cursor and an optional reason filter',
  })
  @ApiOkResponse({ type: DlqListDto })
  @ApiErrors(400)
  list(@Query() query: DlqListQueryDto) {
    return this.dlq.list(query.limit, query.reason, query.cursor);
  }

  @Get(':id')
  @ApiOperation({
    operationId: 'getDeadLetter',
    summary: 'One entry, with its payload as received',
  })
  @ApiOkResponse({ type: DlqEntryDto })
  @ApiErrors(400, [404, 'no such entry (code `not_found`)'])
  get(@Param() params: DlqIdParamsDto) {
    return this.dlq.get(params.id);
  }

  @Post(':id/redrive')
  @UseGuards(WriteThrottlerGuard)
  @HttpCode(HttpStatus.ACCEPTED)
  @ApiOperation({
    operationId: 'redriveDeadLetter',
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
  @ApiErrors(
    400,
    [404, 'no such entry (code `not_found`)'],
    [409, 'the stored payload was truncated: send a corrected one (code `conflict`)'],
    413,
    415,
    429,
    [
      503,
      'Kinesis did not take the record in time (`stream_unavailable`), the buffer is full (`buffer_full`) or the instance is shutting down (`shutting_down`): the entry stays pending; see Retry-After',
    ],
  )
  redrive(@Param() params: DlqIdParamsDto, @Body() body: unknown) {
    return this.dlq.redrive(params.id, body);
  }

  @Delete(':id')
  @UseGuards(WriteThrottlerGuard)
  @HttpCode(HttpStatus.NO_CONTENT)
  @ApiOperation({ operationId: 'deleteDeadLetter', summary: 'Delete an entry' })
  @ApiNoContentResponse({ description: 'deleted' })
  @ApiErrors(400, [404, 'no such entry (code `not_found`)'], 429)
  async delete(@Param() params: DlqIdParamsDto): Promise<void> {
    await this.dlq.delete(params.id);
  }
}
