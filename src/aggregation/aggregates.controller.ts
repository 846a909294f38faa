import { Controller, Get, Inject, Param, Query, UseGuards } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiSecurity,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import { AppError, ErrorCode } from '../common/app-error';
import { API_KEY_SCHEME, ApiKeyGuard, ReadAccess } from '../common/api-key.guard';
import { ErrorResponseDto } from '../common/dto/error-response.dto';
import { AppConfig } from '../config/app.config';
import { APP_CONFIG } from '../config/config.tokens';
import { CityParamsDto } from '../speed-layer/dto/city-params.dto';
import { AggregatesRepository } from './aggregates.repository';
import { AggregatesQueryDto, AggregatesResponseDto } from './dto/aggregates-query.dto';

const DAY_MS = 86_400_000;

@ApiTags('aggregates')
@ApiSecurity(API_KEY_SCHEME)
@UseGuards(ApiKeyGuard)
@ReadAccess()
@Controller('cities')
export class AggregatesController {
  constructor(
    private readonly aggregates: AggregatesRepository,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  @Get(':cityId/aggregates')
  @ApiOperation({ summary: 'Event-time window statistics of a city, ascending window_start' })
  @ApiOkResponse({ type: AggregatesResponseDto })
  @ApiBadRequestResponse({ type: ErrorResponseDto })
  async list(
    @Param() params: CityParamsDto,
    @Query() query: AggregatesQueryDto,
  ): Promise<AggregatesResponseDto> {
    const sizes = this.config.aggregation.sizes.map((s) => s.label);
    const window = query.window ?? (sizes.includes('5m') ? '5m' : sizes[0]);
    const problems: string[] = [];
    if (!sizes.includes(window)) problems.push(`window must be one of ${sizes.join(', ')}`);
    const to = query.to ? new Date(query.to) : new Date();
    const from = query.from ? new Date(query.from) : new Date(to.getTime() - DAY_MS);
    if (query.to && Number.isNaN(to.getTime())) problems.push('to must be a valid date-time');
    if (query.from && Number.isNaN(from.getTime())) problems.push('from must be a valid date-time');
    if (problems.length === 0 && from.getTime() >= to.getTime())
      problems.push('from must be before to');
    if (problems.length > 0)
      throw new AppError(ErrorCode.ValidationFailed, 'validation failed', problems);
    const items = await this.aggregates.query(
      params.cityId,
      window,
      from.toISOString(),
      to.toISOString(),
      query.limit,
    );
    return { city_id: params.cityId, window, items };
  }
}
