/**
 * Stable error codes: the `code` of every error body, a snake_case string a client can branch on.
 * This enum is the single source of the codes; ERROR_STATUS maps each to its HTTP status.
 */
export enum ErrorCode {
  /** 400: a field, parameter or query value is invalid (every problem listed in `message`). */
  ValidationFailed = 'validation_failed',
  /** 400: the body is not valid JSON. */
  MalformedJson = 'malformed_json',
  /** 400: the request could not be read (URL not validly encoded, body aborted, …). */
  BadRequest = 'bad_request',
  /** 401: API_KEYS is set and X-API-Key is missing or wrong. */
  Unauthorized = 'unauthorized',
  /** 404: no such route, city or dead-letter entry. */
  NotFound = 'not_found',
  /** 409: the request conflicts with the stored state (a DLQ redrive of a truncated payload). */
  Conflict = 'conflict',
  /** 413: the body is over 1 MB. */
  PayloadTooLarge = 'payload_too_large',
  /** 415: the body is not JSON, or in an unsupported encoding or charset. */
  UnsupportedMediaType = 'unsupported_media_type',
  /** 429: over RATE_LIMIT_PER_MINUTE; see Retry-After. */
  RateLimited = 'rate_limited',
  /** 500: an unexpected error (logged, never described to the client). */
  InternalError = 'internal_error',
  /** 503: Kinesis did not acknowledge every record before the producer's deadline; see Retry-After. */
  StreamUnavailable = 'stream_unavailable',
  /** 503: the producer's buffer is full (back-pressure); see Retry-After. */
  Overloaded = 'buffer_full',
  /** 503: the instance is shutting down; another instance (or a retry) will take it; see Retry-After. */
  ShuttingDown = 'shutting_down',
}

/** The HTTP status of every code: the one table the error filter answers from. */
export const ERROR_STATUS: Readonly<Record<ErrorCode, number>> = {
  [ErrorCode.ValidationFailed]: 400,
  [ErrorCode.MalformedJson]: 400,
  [ErrorCode.BadRequest]: 400,
  [ErrorCode.Unauthorized]: 401,
  [ErrorCode.NotFound]: 404,
  [ErrorCode.Conflict]: 409,
  [ErrorCode.PayloadTooLarge]: 413,
  [ErrorCode.UnsupportedMediaType]: 415,
  [ErrorCode.RateLimited]: 429,
  [ErrorCode.InternalError]: 500,
  [ErrorCode.StreamUnavailable]: 503,
  [ErrorCode.Overloaded]: 503,
  [ErrorCode.ShuttingDown]: 503,
};

/** Every code, in the order above (the enum of `code` in the OpenAPI document). */
export const ERROR_CODES: readonly ErrorCode[] = Object.values(ErrorCode);

/** Reason phrases of the statuses the service answers with (Nest's `error` field). */
export const REASON_PHRASE: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** The error body every route sends: Nest's `{ statusCode, error, message }` plus `code`. */
export interface ErrorBody {
  statusCode: number;
  error: string;
  message: string | string[];
  code: ErrorCode;
}

/** The body for a code, with its status from ERROR_STATUS. */
export function errorBody(code: ErrorCode, message: string | string[]): ErrorBody {
  const statusCode = ERROR_STATUS[code];
  return { statusCode, error: REASON_PHRASE[statusCode] ?? 'Error', message, code };
}

export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: string[] = [],
    /** Seconds a client should wait before retrying, for the unavailable codes. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'AppError';
  }
}
