import { Controller, Get, Param, Query, UseGuards } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { AppError, ErrorCode } from '../common/app-error';
import { API_KEY_SCHEME, ApiKeyGuard, ReadAccess } from '../common/api-key.guard';
import { CURSOR_NOTE, CursorCodec, refuseCursor } from '../common/cursor';
import { ApiErrors, READ_UNAUTHORIZED } from '../common/openapi';
import { CitiesQueryDto } from './dto/cities-query.dto';
import { CityParamsDto } from './dto/city-params.dto';
import { LatestQueryDto } from './dto/latest-query.dto';
import { CitiesResponseDto, LatestResponseDto, toStoredMeasurementDto } from './dto/responses.dto';
import { CITIES_PARTITION, SpeedLayerRepository } from './speed-layer.repository';

@ApiTags('speed layer')
@ApiSecurity(API_KEY_SCHEME)
@ApiErrors(READ_UNAUTHORIZED)
@UseGuards(ApiKeyGuard)
@ReadAccess()
@Controller('cities')
export class SpeedLayerController {
  constructor(
    private readonly speedLayer: SpeedLayerRepository,
    private readonly cursors: CursorCodec,
  ) {}

  @Get()
  @ApiOperation({
    operationId: 'listCities',
    summary: 'Every city seen in the speed layer, with its newest measurement',
    description: `Ascending city_id, at most \`limit\` cities a page; \`next_cursor\` pages on. ${CURSOR_NOTE}`,
  })
  @ApiOkResponse({ type: CitiesResponseDto })
  @ApiErrors(400)
  async cities(@Query() query: CitiesQueryDto): Promise<CitiesResponseDto> {
    const scope = { route: 'cities' };
    let startKey: { city_id: string; sk: string } | undefined;
    if (query.cursor) {
      const { sk } = this.cursors.verify(query.cursor, scope);
      if (typeof sk !== 'string') refuseCursor();
      startKey = { city_id: CITIES_PARTITION, sk };
    }
    const { items, next } = await this.speedLayer.cities(query.limit, startKey);
    return {
      items: items.map((city) => ({
        city_id: city.city_id,
        city_name: city.city_name,
        latest: toStoredMeasurementDto(city.latest),
      })),
      next_cursor: next ? this.cursors.sign(scope, { sk: next.sk }) : null,
    };
  }

  @Get(':cityId/latest')
  @ApiOperation({
    operationId: 'getCityLatest',
    summary: 'The newest measurements of a city, by event time; expired items are never returned',
    description: `\`next_cursor\` pages to older measurements. ${CURSOR_NOTE}`,
  })
  @ApiOkResponse({ type: LatestResponseDto })
  @ApiErrors(400, [404, 'no measurement of this city in the speed layer (code `not_found`)'])
  async latest(
    @Param() params: CityParamsDto,
    @Query() query: LatestQueryDto,
  ): Promise<LatestResponseDto> {
    const scope = { route: 'latest', city: params.cityId };
    const startKey = query.cursor ? this.cursors.verify(query.cursor, scope) : undefined;
    if (startKey && (startKey.city_id !== params.cityId || typeof startKey.sk !== 'string'))
      refuseCursor();
    const { items, next } = await this.speedLayer.latest(params.cityId, query.limit, startKey);
    // A later page may be empty (its items expired meanwhile); only the first says "no city".
    if (items.length === 0 && !startKey) {
      throw new AppError(
        ErrorCode.NotFound,
        `no measurement of city ${params.cityId} in the speed layer`,
      );
    }
    return {
      city_id: params.cityId,
      items: items.map(toStoredMeasurementDto),
      next_cursor: next ? this.cursors.sign(scope, next) : null,
    };
  }
}
