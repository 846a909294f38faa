import { applyDecorators } from '@nestjs/common';
import { ApiResponse } from '@nestjs/swagger';
import type { OpenAPIObject, SchemaObject } from '@nestjs/swagger';
import { AppConfig } from '../config/app.config';
import { errorBody, ErrorCode, ERROR_STATUS } from './app-error';
import {
  ErrorResponseDto,
  RATE_LIMITED_HEADERS,
  RETRY_AFTER_HEADER,
} from './dto/error-response.dto';

type ErrorStatus = 400 | 401 | 404 | 409 | 413 | 415 | 429 | 503;

/** What every error status means wherever it is answered, unless a route says more. */
const DEFAULT_DESCRIPTION: Record<ErrorStatus, string> = {
  400: 'a parameter or the body is invalid (code `validation_failed`; every problem listed in `message`)',
  401: 'API_KEYS is set and X-API-Key is missing or wrong (code `unauthorized`)',
  404: 'not found (code `not_found`)',
  409: 'conflicts with the stored state (code `conflict`)',
  413: 'body over 1 MB (code `payload_too_large`)',
  415: 'the body is not JSON, or not in UTF-8 (code `unsupported_media_type`)',
  429: 'over RATE_LIMIT_PER_MINUTE (code `rate_limited`); see Retry-After and RateLimit',
  503: 'unavailable for now; retry after Retry-After seconds',
};

const HEADERS: Partial<Record<ErrorStatus, object>> = {
  429: RATE_LIMITED_HEADERS,
  503: RETRY_AFTER_HEADER,
};

/** One example body per code, grouped by status, for the document's examples. */
const EXAMPLE_MESSAGE: Record<ErrorCode, string | string[]> = {
  [ErrorCode.ValidationFailed]: ['limit must not be greater than 100'],
  [ErrorCode.MalformedJson]: 'request body is not valid JSON',
  [ErrorCode.BadRequest]: 'the request could not be read',
  [ErrorCode.Unauthorized]: 'a valid X-API-Key header is required',
  [ErrorCode.NotFound]: 'no measurement of city delhi in the speed layer',
  [ErrorCode.Conflict]: 'the stored payload was truncated; send a corrected payload',
  [ErrorCode.PayloadTooLarge]: 'request body is larger than 1 MB',
  [ErrorCode.UnsupportedMediaType]:
    'the request body must be JSON (Content-Type: application/json)',
  [ErrorCode.RateLimited]:
    'too many write requests: retry after the number of seconds in Retry-After',
  [ErrorCode.InternalError]: 'internal error',
  [ErrorCode.StreamUnavailable]:
    'the stream did not acknowledge every record before the deadline; resending the same body is safe',
  [ErrorCode.Overloaded]: 'the ingestion buffer is full, retry shortly',
  [ErrorCode.ShuttingDown]: 'the service is shutting down',
};

function examplesFor(status: number) {
  const codes = (Object.keys(ERROR_STATUS) as ErrorCode[]).filter(
    (code) => ERROR_STATUS[code] === status,
  );
  return Object.fromEntries(
    codes.map((code) => [code, { summary: code, value: errorBody(code, EXAMPLE_MESSAGE[code]) }]),
  );
}

/**
 * The error responses of a route: each status with the shared error body, its headers (429,
 * 503) and an example per code. A string replaces the default description.
 */
export function ApiErrors(
  ...statuses: (ErrorStatus | [ErrorStatus, string])[]
): MethodDecorator & ClassDecorator {
  return applyDecorators(
    ...statuses.map((entry) => {
      const [status, description] = Array.isArray(entry)
        ? entry
        : [entry, DEFAULT_DESCRIPTION[entry]];
      return ApiResponse({
        status,
        description,
        type: ErrorResponseDto,
        headers: HEADERS[status] as never,
        examples: examplesFor(status),
      });
    }),
  ) as MethodDecorator & ClassDecorator;
}

/** The reads' 401: only when READ_API_KEYS_REQUIRED is true. */
export const READ_UNAUTHORIZED: [401, string] = [
  401,
  'READ_API_KEYS_REQUIRED is true and X-API-Key is missing or wrong (code `unauthorized`)',
];

/** Express tags every GET answer with a weak ETag and honours If-None-Match with a 304. */
const NOT_MODIFIED = {
  description: 'unchanged since the ETag sent in If-None-Match (no body)',
  headers: {
    ETag: { description: 'the ETag of the unchanged answer', schema: { type: 'string' } },
  },
};

/**
 * What the decorators cannot know: every operation may answer 500 `internal_error`, a GET 304
 * to a conditional request, and the `window` parameter takes exactly the sizes this instance
 * computes (AGGREGATION_WINDOWS).
 */
export function completeDocument(document: OpenAPIObject, config: AppConfig): OpenAPIObject {
  const sizes = config.aggregation.sizes.map((s) => s.label);
  const defaultSize = sizes.includes('5m') ? '5m' : sizes[0];
  for (const name of ['AggregateDto', 'AggregatesResponseDto']) {
    const window = (document.components?.schemas?.[name] as SchemaObject | undefined)?.properties
      ?.window as SchemaObject | undefined;
    if (window) window.enum = sizes;
  }
  for (const operations of Object.values(document.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      if (!operation || typeof operation !== 'object' || !('responses' in operation)) continue;
      if (method === 'get' && operation.responses['200'])
        operation.responses['304'] ??= NOT_MODIFIED;
      operation.responses['500'] ??= {
        description: 'unexpected error, logged by the service (code `internal_error`)',
        content: {
          'application/json': {
            schema: { $ref: '#/components/schemas/ErrorResponseDto' },
            examples: examplesFor(500),
          },
        },
      };
      for (const parameter of operation.parameters ?? []) {
        if ('name' in parameter && parameter.name === 'window' && parameter.in === 'query')
          parameter.schema = { ...parameter.schema, enum: sizes, default: defaultSize };
      }
    }
  }
  return document;
}
