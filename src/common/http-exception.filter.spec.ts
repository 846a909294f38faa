import {
  ArgumentsHost,
  BadRequestException,
  HttpException,
  Logger,
  NotFoundException,
  PayloadTooLargeException,
  ServiceUnavailableException,
  UnauthorizedException,
} from '@nestjs/common';
import { ThrottlerException } from '@nestjs/throttler';
import { AppError, ERROR_CODES, ERROR_STATUS, ErrorCode, errorBody } from './app-error';
import { HttpExceptionFilter } from './http-exception.filter';

interface Sent {
  status?: number;
  body?: unknown;
  headers: Record<string, string>;
}

function send(exception: unknown): Sent {
  const sent: Sent = { headers: {} };
  const response = {
    status(code: number) {
      sent.status = code;
      return this;
    },
    json(body: unknown) {
      sent.body = body;
      return this;
    },
    setHeader(name: string, value: string) {
      sent.headers[name] = value;
    },
  };
  const host = {
    switchToHttp: () => ({ getResponse: () => response, getRequest: () => ({}) }),
  } as unknown as ArgumentsHost;
  new HttpExceptionFilter().catch(exception, host);
  return sent;
}

const REASON: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

describe('error codes', () => {
  it('are unique snake_case strings, each with a status', () => {
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length);
    for (const code of ERROR_CODES) {
      expect(code).toMatch(/^[a-z]+(_[a-z]+)*$/);
      expect(REASON[ERROR_STATUS[code]]).toBeDefined();
    }
  });

  it('cover what the contract names, with their statuses', () => {
    expect(ERROR_STATUS).toEqual({
      validation_failed: 400,
      malformed_json: 400,
      bad_request: 400,
      unauthorized: 401,
      not_found: 404,
      conflict: 409,
      payload_too_large: 413,
      unsupported_media_type: 415,
      rate_limited: 429,
      internal_error: 500,
      stream_unavailable: 503,
      buffer_full: 503,
      shutting_down: 503,
    });
  });

  it.each(ERROR_CODES)('errorBody(%s) is Nest’s shape plus the code', (code) => {
    const status = ERROR_STATUS[code];
    expect(errorBody(code, 'm')).toEqual({
      statusCode: status,
      error: REASON[status],
      message: 'm',
      code,
    });
  });
});

describe('HttpExceptionFilter', () => {
  beforeAll(() => jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined));
  afterAll(() => jest.restoreAllMocks());

  it.each(ERROR_CODES)('answers an AppError %s with its status and code', (code) => {
    const sent = send(new AppError(code, 'what happened'));
    const status = ERROR_STATUS[code];
    expect(sent.status).toBe(status);
    expect(sent.body).toEqual({
      statusCode: status,
      error: REASON[status],
      message: 'what happened',
      code,
    });
    expect(Object.keys(sent.body as object)).toEqual(['statusCode', 'error', 'message', 'code']);
  });

  it('lists the details of an AppError as the message', () => {
    const sent = send(new AppError(ErrorCode.ValidationFailed, 'validation failed', ['a', 'b']));
    expect(sent.body).toMatchObject({ message: ['a', 'b'], code: 'validation_failed' });
  });

  it.each([
    [ErrorCode.StreamUnavailable, 'stream_unavailable'],
    [ErrorCode.Overloaded, 'buffer_full'],
    [ErrorCode.ShuttingDown, 'shutting_down'],
  ])('tells the 503s apart: %s, with Retry-After', (code, wire) => {
    const sent = send(new AppError(code, 'unavailable', [], 3));
    expect(sent.status).toBe(503);
    expect(sent.headers['Retry-After']).toBe('3');
    expect(sent.body).toMatchObject({ statusCode: 503, code: wire });
  });

  it.each<[string, unknown, number, ErrorCode]>([
    [
      'a ValidationPipe 400',
      new BadRequestException(['limit must not be less than 1']),
      400,
      ErrorCode.ValidationFailed,
    ],
    [
      'a missing key',
      new UnauthorizedException('a valid X-API-Key header is required'),
      401,
      ErrorCode.Unauthorized,
    ],
    ['an unknown route', new NotFoundException('Cannot GET /nowhere'), 404, ErrorCode.NotFound],
    ['the throttler', new ThrottlerException('too many'), 429, ErrorCode.RateLimited],
    ['a 413 exception', new PayloadTooLargeException(), 413, ErrorCode.PayloadTooLarge],
    ['an unmapped 4xx', new HttpException('nope', 405), 405, ErrorCode.BadRequest],
    ['a bare 503 exception', new ServiceUnavailableException('down'), 503, ErrorCode.InternalError],
  ])('maps %s to its code', (_name, exception, status, code) => {
    const sent = send(exception);
    expect(sent.status).toBe(status);
    expect(sent.body).toMatchObject({ statusCode: status, code });
  });

  it.each<[string, unknown, number, ErrorCode, string]>([
    [
      'malformed JSON',
      Object.assign(new SyntaxError('Unexpected end of JSON input'), {
        type: 'entity.parse.failed',
        status: 400,
      }),
      400,
      ErrorCode.MalformedJson,
      'request body is not valid JSON',
    ],
    [
      'a body over the limit',
      Object.assign(new Error('request entity too large'), {
        type: 'entity.too.large',
        status: 413,
      }),
      413,
      ErrorCode.PayloadTooLarge,
      'request body is larger than 1 MB',
    ],
    [
      'an unsupported charset',
      Object.assign(new Error('unsupported charset "X"'), {
        type: 'charset.unsupported',
        status: 415,
      }),
      415,
      ErrorCode.UnsupportedMediaType,
      'unsupported content encoding or charset',
    ],
    [
      'an aborted body',
      Object.assign(new Error('request aborted'), { type: 'request.aborted', status: 400 }),
      400,
      ErrorCode.BadRequest,
      'the request could not be read',
    ],
  ])('maps a body-parser error (%s) without its text', (_name, error, status, code, message) => {
    for (const exception of [error, new HttpException('x', status, { cause: error as Error })]) {
      const sent = send(exception);
      expect(sent.status).toBe(status);
      expect(sent.body).toEqual({ statusCode: status, error: REASON[status], message, code });
    }
  });

  it('maps an undecodable URL to bad_request', () => {
    const sent = send(new HttpException('x', 400, { cause: new URIError('URI malformed') }));
    expect(sent.body).toMatchObject({ statusCode: 400, code: 'bad_request' });
  });

  it('answers anything else with a bare 500 internal_error and no AWS text', () => {
    const aws = Object.assign(new Error('User: arn:aws:iam::123:user/x is not authorized'), {
      name: 'AccessDeniedException',
      $fault: 'client',
      $metadata: { httpStatusCode: 400 },
    });
    const sent = send(aws);
    expect(sent.status).toBe(500);
    expect(sent.body).toEqual({
      statusCode: 500,
      error: 'Internal Server Error',
      message: 'internal error',
      code: 'internal_error',
    });
    expect(JSON.stringify(sent.body)).not.toMatch(/arn:|AccessDenied|authorized/);
  });

  it('passes the readiness body of terminus through, without a code', () => {
    const body = { status: 'error', info: {}, error: { stream: { status: 'down' } }, details: {} };
    const sent = send(new ServiceUnavailableException(body));
    expect(sent.status).toBe(503);
    expect(sent.body).toEqual(body);
  });
});
