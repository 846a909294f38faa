import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { Response } from 'express';
import { AppError, ERROR_STATUS, ErrorBody, ErrorCode, REASON_PHRASE } from './app-error';

interface BodyParserError {
  type?: string;
  status?: number;
  statusCode?: number;
}

/** The code of an HttpException (guards, pipes, the router) by its status. */
const CODE_OF_STATUS: Readonly<Record<number, ErrorCode>> = {
  400: ErrorCode.ValidationFailed,
  401: ErrorCode.Unauthorized,
  404: ErrorCode.NotFound,
  409: ErrorCode.Conflict,
  413: ErrorCode.PayloadTooLarge,
  415: ErrorCode.UnsupportedMediaType,
  429: ErrorCode.RateLimited,
  500: ErrorCode.InternalError,
};

const codeOfStatus = (status: number): ErrorCode =>
  CODE_OF_STATUS[status] ?? (status < 500 ? ErrorCode.BadRequest : ErrorCode.InternalError);

/** A body-parser or router error: its code and a message of our own (never its text). */
function describeRequestError(
  error: BodyParserError | Error,
  status: number,
): { code: ErrorCode; message: string } {
  const type = (error as BodyParserError).type;
  if (type === 'entity.too.large' || status === 413) {
    return { code: ErrorCode.PayloadTooLarge, message: 'request body is larger than 1 MB' };
  }
  if (type === 'entity.parse.failed' || error instanceof SyntaxError) {
    return { code: ErrorCode.MalformedJson, message: 'request body is not valid JSON' };
  }
  if (error instanceof URIError) {
    return { code: ErrorCode.BadRequest, message: 'the URL is not validly encoded' };
  }
  if (type === 'encoding.unsupported' || type === 'charset.unsupported' || status === 415) {
    return {
      code: ErrorCode.UnsupportedMediaType,
      message: 'unsupported content encoding or charset',
    };
  }
  return { code: ErrorCode.BadRequest, message: 'the request could not be read' };
}

interface Described {
  status: number;
  code: ErrorCode;
  message: string | string[];
  retryAfter?: number;
}

/**
 * Every error leaves in Nest's shape `{ statusCode, error, message }` plus a stable `code`
 * (ErrorCode), with no stack trace, AWS error text or internal name; unexpected errors are logged
 * here and answered with a bare 500 `internal_error`.
 */
@Catch()
export class HttpExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger(HttpExceptionFilter.name);

  catch(exception: unknown, host: ArgumentsHost): void {
    const response = host.switchToHttp().getResponse<Response>();
    // Terminus's readiness body (status, info, error, details) is the contract of /health/ready:
    // an operator needs its details most when it answers 503.
    if (exception instanceof HttpException && isHealthCheckBody(exception.getResponse())) {
      response.status(exception.getStatus()).json(exception.getResponse());
      return;
    }
    const { status, code, message, retryAfter } = this.describe(exception);
    if (retryAfter !== undefined) response.setHeader('Retry-After', String(retryAfter));
    const body: ErrorBody = {
      statusCode: status,
      error: REASON_PHRASE[status] ?? 'Error',
      message,
      code,
    };
    response.status(status).json(body);
  }

  /** The status, code and client-safe message of any exception. */
  describe(exception: unknown): Described {
    if (exception instanceof AppError) {
      return {
        status: ERROR_STATUS[exception.code],
        code: exception.code,
        message: exception.details.length > 0 ? exception.details : exception.message,
        retryAfter: exception.retryAfterSeconds,
      };
    }
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const cause = exception.cause;
      // Errors of the body parser and the router keep their status, never their text.
      if (cause instanceof Error) return { status, ...describeRequestError(cause, status) };
      const body = exception.getResponse();
      const message =
        typeof body === 'object' && body !== null && 'message' in body
          ? (body as { message: string | string[] }).message
          : exception.message;
      return { status, code: codeOfStatus(status), message };
    }
    const parserError = exception as BodyParserError;
    const parserStatus = parserError?.status ?? parserError?.statusCode;
    if (typeof parserStatus === 'number' && parserStatus >= 400 && parserStatus < 500) {
      return { status: parserStatus, ...describeRequestError(parserError, parserStatus) };
    }
    this.logger.error(
      exception instanceof Error ? (exception.stack ?? exception.message) : String(exception),
    );
    return { status: 500, code: ErrorCode.InternalError, message: 'internal error' };
  }
}

function isHealthCheckBody(body: unknown): boolean {
  return (
    typeof body === 'object' &&
    body !== null &&
    (body as { status?: unknown }).status === 'error' &&
    'details' in body
  );
}
