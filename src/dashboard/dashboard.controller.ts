import {
  Controller,
  Get,
  HttpCode,
  HttpStatus,
  Inject,
  Param,
  Post,
  Req,
  Res,
  Sse,
  UseGuards,
} from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiExtraModels,
  ApiHeader,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiResponse,
  ApiSecurity,
  ApiTags,
  ApiTooManyRequestsResponse,
  ApiUnauthorizedResponse,
  getSchemaPath,
} from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { readFileSync } from 'node:fs';
import { Observable, takeUntil, timer } from 'rxjs';
import { API_KEY_SCHEME, ApiKeyGuard } from '../common/api-key.guard';
import { AppError, ErrorCode } from '../common/app-error';
import { ErrorResponseDto, RATE_LIMITED_HEADERS } from '../common/dto/error-response.dto';
import { WriteThrottlerGuard } from '../common/write-throttler.guard';
import { AppConfig } from '../config/app.config';
import { APP_CONFIG } from '../config/config.tokens';
import { Asset, INDEX_HTML, loadAssets } from './dashboard-assets';
import { DashboardEvent, DashboardFeed } from './dashboard-feed.service';
import { DashboardSessions } from './dashboard-session';
import { DashboardAssetParamsDto, DashboardSessionDto } from './dto/dashboard.dto';

/** Stricter than helmet's default, and without upgrade-insecure-requests (a wall screen on plain HTTP). */
const PAGE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');
const NEED_KEY = 'the dashboard needs a session: POST /dashboard/session with X-API-Key first';
const HTML = { 'text/html': { schema: { type: 'string' } } };
/** Error bodies are JSON whatever the route's own content type (no @ApiProduces, which spreads). */
const ERROR_JSON = { 'application/json': { schema: { $ref: getSchemaPath(ErrorResponseDto) } } };

@ApiTags('dashboard')
@ApiExtraModels(ErrorResponseDto)
@Controller()
export class DashboardController {
  private readonly sessions: DashboardSessions;
  private readonly assets: Map<string, Asset>;
  private readonly template: string;

  constructor(
    private readonly feed: DashboardFeed,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    this.sessions = new DashboardSessions(config.apiKeys);
    this.assets = loadAssets();
    this.template = readFileSync(INDEX_HTML, 'utf8');
  }

  @Get()
  @ApiOperation({
    operationId: 'getDashboard',
    summary: 'The live dashboard (HTML): city tiles, a chart per city, the pipeline, the DLQ',
    description:
      'With READ_API_KEYS_REQUIRED the page needs the session cookie from POST /dashboard/session; ' +
      'without it a browser gets 401 with the page, which asks for the key, and other clients get ' +
      '401 in the error shape.',
  })
  @ApiOkResponse({ description: 'the page', content: HTML })
  @ApiUnauthorizedResponse({
    description: 'READ_API_KEYS_REQUIRED and no valid session cookie',
    content: { ...HTML, ...ERROR_JSON },
  })
  page(@Req() req: Request, @Res() res: Response): void {
    const hasSession = this.sessionExpiry(req) !== undefined;
    if (!hasSession && req.accepts(['html', 'json']) === 'json')
      throw new AppError(ErrorCode.Unauthorized, NEED_KEY);
    const html = this.template
      .replace('{{READ_KEY}}', !this.config.readApiKeysRequired ? 'open' : 'required')
      .replace('{{SESSION}}', hasSession ? 'yes' : 'no')
      .replace('{{WRITE_KEY}}', this.config.apiKeys.length > 0 ? 'required' : 'open');
    res
      .status(hasSession ? HttpStatus.OK : HttpStatus.UNAUTHORIZED)
      .set({
        'Content-Type': 'text/html; charset=utf-8',
        'Content-Security-Policy': PAGE_CSP,
        'Cache-Control': 'no-store',
      })
      .send(html);
  }

  @Sse('events')
  @ApiOperation({
    operationId: 'streamEvents',
    summary: 'Server-sent events that keep the dashboard live',
    description:
      'Events: `snapshot` (first on every connection, also after a reconnect: the whole current ' +
      'state), `cities` (the newest measurement of each city that changed, in the API shape, at most ' +
      'four a second), `pipeline` (rates, shards, DLQ counts, readiness; every second), ' +
      '`heartbeat` (every 15 s). Every event has an `id`; a reconnect (Last-Event-ID) gets a fresh ' +
      'snapshot. With READ_API_KEYS_REQUIRED it needs the session cookie of POST /dashboard/session, ' +
      'and the stream ends when the session expires.',
  })
  @ApiHeader({
    name: 'Last-Event-ID',
    required: false,
    description: 'sent by EventSource on a reconnect; answered with a fresh snapshot',
  })
  @ApiOkResponse({
    description: 'an endless event stream',
    content: { 'text/event-stream': { schema: { type: 'string' } } },
  })
  @ApiUnauthorizedResponse({
    description: 'READ_API_KEYS_REQUIRED and no valid session cookie',
    content: ERROR_JSON,
  })
  events(@Req() req: Request): Observable<DashboardEvent> {
    const expiresAt = this.sessionExpiry(req);
    if (expiresAt === undefined) throw new AppError(ErrorCode.Unauthorized, NEED_KEY);
    const stream = this.feed.connect();
    return Number.isFinite(expiresAt)
      ? stream.pipe(takeUntil(timer(Math.max(0, expiresAt - Date.now()))))
      : stream;
  }

  @Post('dashboard/session')
  @HttpCode(HttpStatus.OK)
  @UseGuards(ApiKeyGuard, WriteThrottlerGuard)
  @ApiSecurity(API_KEY_SCHEME)
  @ApiOperation({
    operationId: 'createDashboardSession',
    summary: 'Trade X-API-Key for a short-lived session cookie that opens the dashboard',
    description:
      'Sets `aq_dashboard` (HttpOnly, SameSite=Strict, Secure over HTTPS) for one hour: a signed ' +
      'token, never the key. EventSource cannot send headers, and a key must never be put in a URL.',
  })
  @ApiOkResponse({
    type: DashboardSessionDto,
    headers: { 'Set-Cookie': { description: 'the session cookie', schema: { type: 'string' } } },
  })
  @ApiUnauthorizedResponse({
    type: ErrorResponseDto,
    description: 'API_KEYS is set and X-API-Key is missing or wrong',
  })
  @ApiTooManyRequestsResponse({ type: ErrorResponseDto, headers: RATE_LIMITED_HEADERS })
  createSession(@Req() req: Request, @Res({ passthrough: true }) res: Response) {
    const { token, expiresAt } = this.sessions.issue();
    res.setHeader('Set-Cookie', DashboardSessions.cookie(token, expiresAt, req.secure));
    res.setHeader('Cache-Control', 'no-store');
    return { expires_at: new Date(expiresAt).toISOString() } satisfies DashboardSessionDto;
  }

  @Get('dashboard/assets/:name')
  @ApiOperation({
    operationId: 'getDashboardAsset',
    summary: "The dashboard's script and styles, and uPlot (its chart library)",
  })
  @ApiOkResponse({
    description: 'the file, with an ETag',
    content: {
      'text/javascript': { schema: { type: 'string' } },
      'text/css': { schema: { type: 'string' } },
    },
  })
  @ApiResponse({ status: HttpStatus.NOT_MODIFIED, description: 'If-None-Match matched the ETag' })
  @ApiBadRequestResponse({ description: 'a malformed name', content: ERROR_JSON })
  @ApiNotFoundResponse({ description: 'no such file', content: ERROR_JSON })
  asset(@Param() params: DashboardAssetParamsDto, @Res() res: Response): void {
    const asset = this.assets.get(params.name);
    if (!asset) throw new AppError(ErrorCode.NotFound, `no dashboard asset ${params.name}`);
    res
      .set({ 'Content-Type': asset.contentType, ETag: asset.etag, 'Cache-Control': 'no-cache' })
      .send(asset.body);
  }

  /** Infinity when reads are open, the session's expiry, or undefined without a valid session. */
  private sessionExpiry(req: Request): number | undefined {
    if (!this.config.readApiKeysRequired) return Number.POSITIVE_INFINITY;
    return this.sessions.verify(DashboardSessions.fromCookieHeader(req.headers.cookie));
  }
}
