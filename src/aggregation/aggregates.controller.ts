import { Controller, Get, Inject, Param, Query, UseGuards } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { AppError, ErrorCode } from '../common/app-error';
import { API_KEY_SCHEME, ApiKeyGuard, ReadAccess } from '../common/api-key.guard';
import { CURSOR_NOTE, CursorCodec, refuseCursor } from '../common/cursor';
import { ApiErrors, READ_UNAUTHORIZED } from '../common/openapi';
import { AppConfig } from '../config/app.config';
import { APP_CONFIG } from '../config/config.tokens';
import { CityParamsDto } from '../speed-layer/dto/city-params.dto';
import { AggregatesRepository } from './aggregates.repository';
import {
  AggregatesQueryDto,
  AggregatesResponseDto,
  toAggregateDto,
} from './dto/aggregates-query.dto';

const DAY_MS = 86_400_000;

@ApiTags('aggregates')
@ApiSecurity(API_KEY_SCHEME)
@ApiErrors(READ_UNAUTHORIZED)
@UseGuards(ApiKeyGuard)
@ReadAccess()
@Controller('cities')
export class AggregatesController {
  constructor(
    private readonly aggregates: AggregatesRepository,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly cursors: CursorCodec,
  ) {}

  @Get(':cityId/aggregates')
  @ApiOperation({
    operationId: 'getCityAggregates',
    summary: 'Event-time window statistics of a city, ascending window_start',
    description: `When the range holds more than \`limit\` windows, the newest \`limit\` of them; \`next_cursor\` pages toward older windows (null when none are left). An empty list when the city has no window in the range. ${CURSOR_NOTE}`,
  })
  @ApiOkResponse({ type: AggregatesResponseDto })
  @ApiErrors(400)
  async list(
    @Param() params: CityParamsDto,
    @Query() query: AggregatesQueryDto,
  ): Promise<AggregatesResponseDto> {
    const sizes = this.config.aggregation.sizes.map((s) => s.label);
    const window = query.window ?? (sizes.includes('5m') ? '5m' : sizes[0]);
    const problems: string[] = [];
    if (!sizes.includes(window)) problems.push(`window must be one of ${sizes.join(', ')}`);
    let to = query.to ? new Date(query.to) : new Date();
    let from = query.from ? new Date(query.from) : new Date(to.getTime() - DAY_MS);
    if (query.to && Number.isNaN(to.getTime())) problems.push('to must be a valid date-time');
    if (query.from && Number.isNaN(from.getTime())) problems.push('from must be a valid date-time');
    if (problems.length === 0 && from.getTime() >= to.getTime())
      problems.push('from must be before to');
    if (problems.length > 0)
      throw new AppError(ErrorCode.ValidationFailed, 'validation failed', problems);
    // The query's identity: a cursor of another city, window or range is refused. A default
    // bound is resolved on the first page and carried by the cursor, so the range stays put.
    const scope = {
      route: 'aggregates',
      city: params.cityId,
      window,
      from: query.from ? from.toISOString() : '',
      to: query.to ? to.toISOString() : '',
    };
    let startKey: { city_id: string; window_key: string } | undefined;
    if (query.cursor) {
      const state = this.cursors.verify(query.cursor, scope);
      const { window_key: key, from: cursorFrom, to: cursorTo } = state;
      if (
        typeof key !== 'string' ||
        typeof cursorFrom !== 'string' ||
        typeof cursorTo !== 'string' ||
        !key.startsWith(`${window}#`) ||
        Number.isNaN(Date.parse(cursorFrom)) ||
        Number.isNaN(Date.parse(cursorTo))
      )
        refuseCursor();
      from = new Date(cursorFrom);
      to = new Date(cursorTo);
      startKey = { city_id: params.cityId, window_key: key };
    }
    const { items, next } = await this.aggregates.query(
      params.cityId,
      window,
      from.toISOString(),
      to.toISOString(),
      query.limit,
      startKey,
    );
    const next_cursor = next
      ? this.cursors.sign(scope, {
          window_key: next.window_key,
          from: from.toISOString(),
          to: to.toISOString(),
        })
      : null;
    return { city_id: params.cityId, window, items: items.map(toAggregateDto), next_cursor };
  }
}
