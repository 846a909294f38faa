import { Controller, Get, Param, Query, UseGuards } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiSecurity,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import { AppError, ErrorCode } from '../common/app-error';
import { API_KEY_SCHEME, ApiKeyGuard, ReadAccess } from '../common/api-key.guard';
import { ErrorResponseDto } from '../common/dto/error-response.dto';
import { CURSOR_REFUSED, signCursor, verifyCursor } from '../common/cursor';
import { CityParamsDto } from './dto/city-params.dto';
import { LatestQueryDto } from './dto/latest-query.dto';
import { CitiesResponseDto, LatestResponseDto } from './dto/responses.dto';
import { SpeedLayerRepository } from './speed-layer.repository';

@ApiTags('speed layer')
@ApiSecurity(API_KEY_SCHEME)
@UseGuards(ApiKeyGuard)
@ReadAccess()
@Controller('cities')
export class SpeedLayerController {
  constructor(private readonly speedLayer: SpeedLayerRepository) {}

  @Get()
  @ApiOperation({ summary: 'Every city seen in the speed layer, with its newest measurement' })
  @ApiOkResponse({ type: CitiesResponseDto })
  async cities(): Promise<CitiesResponseDto> {
    const items = await this.speedLayer.cities();
    items.sort((a, b) => a.city_id.localeCompare(b.city_id));
    return { items };
  }

  @Get(':cityId/latest')
  @ApiOperation({
    summary: 'The newest measurements of a city, by event time; expired items are never returned',
    description:
      '`next_cursor` pages to older measurements. Cursors are signed by the instance that issued them and valid for its life only: after a restart a cursor may be refused with 400 `validation_failed`; start again without cursor.',
  })
  @ApiOkResponse({ type: LatestResponseDto })
  @ApiBadRequestResponse({ type: ErrorResponseDto })
  @ApiNotFoundResponse({
    type: ErrorResponseDto,
    description: 'no measurement of this city in the speed layer',
  })
  async latest(
    @Param() params: CityParamsDto,
    @Query() query: LatestQueryDto,
  ): Promise<LatestResponseDto> {
    const scope = { route: 'latest', city: params.cityId };
    const startKey = query.cursor ? verifyCursor(query.cursor, scope) : undefined;
    if (startKey && (startKey.city_id !== params.cityId || typeof startKey.sk !== 'string'))
      throw new AppError(ErrorCode.ValidationFailed, 'invalid cursor', [CURSOR_REFUSED]);
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
      items,
      next_cursor: next ? signCursor(scope, next) : null,
    };
  }
}
