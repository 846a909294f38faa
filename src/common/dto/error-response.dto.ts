import { ApiProperty } from '@nestjs/swagger';
import { ERROR_CODES, ErrorCode } from '../app-error';

/** Every error body (except /health/ready, which keeps terminus's shape). */
export class ErrorResponseDto {
  @ApiProperty({ type: 'integer', example: 400 })
  statusCode!: number;

  @ApiProperty({ example: 'Bad Request' })
  error!: string;

  @ApiProperty({
    oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }],
    example: ['[1].pm25_value must not be greater than 1000'],
  })
  message!: string | string[];

  @ApiProperty({
    enum: ERROR_CODES,
    enumName: 'ErrorCode',
    example: ErrorCode.ValidationFailed,
    description:
      'Stable, snake_case: branch on this, not on `message`. validation_failed, malformed_json, ' +
      'bad_request (400); unauthorized (401); not_found (404); conflict (409); payload_too_large ' +
      '(413); unsupported_media_type (415); rate_limited (429); internal_error (500); ' +
      'stream_unavailable, buffer_full, shutting_down (503, with Retry-After).',
  })
  code!: ErrorCode;
}

/** The Retry-After header of a 429 or 503, for `@Api…Response({ headers })`. */
export const RETRY_AFTER_HEADER = {
  'Retry-After': {
    description: 'seconds to wait before retrying',
    schema: { type: 'integer', minimum: 0 },
  },
};

/** The headers of a 429 (and, but Retry-After, of every throttled response). */
export const RATE_LIMITED_HEADERS = {
  ...RETRY_AFTER_HEADER,
  'X-RateLimit-Limit': {
    description: 'requests allowed per window (RATE_LIMIT_PER_MINUTE)',
    schema: { type: 'integer' },
  },
  'X-RateLimit-Remaining': {
    description: 'requests left in the current window',
    schema: { type: 'integer' },
  },
  'X-RateLimit-Reset': {
    description: 'seconds until the window resets',
    schema: { type: 'integer' },
  },
  'RateLimit-Policy': {
    description: 'IETF draft: `"default";q=<limit>;w=<window seconds>`',
    schema: { type: 'string' },
  },
  RateLimit: {
    description: 'IETF draft: `"default";r=<remaining>;t=<seconds until reset>`',
    schema: { type: 'string' },
  },
};
