import {
  ArgumentsHost,
  Catch,
  ExceptionFilter,
  HttpException,
  HttpStatus,
  Logger,
} from '@nestjs/common';
import type { Response } from 'express';
import { AppError, ErrorCode } from './app-error';

const STATUS_OF: Record<ErrorCode, HttpStatus> = {
  [ErrorCode.ValidationFailed]: HttpStatus.BAD_REQUEST,
  [ErrorCode.NotFound]: HttpStatus.NOT_FOUND,
  [ErrorCode.Conflict]: HttpStatus.CONFLICT,
  [ErrorCode.StreamUnavailable]: HttpStatus.SERVICE_UNAVAILABLE,
  [ErrorCode.Overloaded]: HttpStatus.SERVICE_UNAVAILABLE,
  [ErrorCode.ShuttingDown]: HttpStatus.SERVICE_UNAVAILABLE,
};

const REASON: Record<number, string> = {
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

interface BodyParserError {
  type?: string;
  status?: number;
  statusCode?: number;
}

function describeRequestError(error: BodyParserError | Error, status: number): string {
  const type = (error as BodyParserError).type;
  if (type === 'entity.too.large' || status === 413) return 'request body is larger than 1 MB';
  if (type === 'entity.parse.failed' || error instanceof SyntaxError)
    return 'request body is not valid JSON';
  if (error instanceof URIError) return 'the URL is not validly encoded';
  if (type === 'encoding.unsupported' || type === 'charset.unsupported' || status === 415) {
    return 'unsupported content encoding or charset';
  }
  return 'the request could not be read';
}

/**
 * Every error leaves in Nest's shape `{ statusCode, error, message }`, with no stack trace, AWS
 * error text or internal name; unexpected errors are logged here and answered with a bare 500.
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
    const { status, message, retryAfter } = this.describe(exception);
    if (retryAfter !== undefined) response.setHeader('Retry-After', String(retryAfter));
    response.status(status).json({ statusCode: status, error: REASON[status] ?? 'Error', message });
  }

  private describe(exception: unknown): {
    status: number;
    message: string | string[];
    retryAfter?: number;
  } {
    if (exception instanceof AppError) {
      const status = STATUS_OF[exception.code];
      return {
        status,
        message: exception.details.length > 0 ? exception.details : exception.message,
        retryAfter: exception.retryAfterSeconds,
      };
    }
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const cause = exception.cause;
      // Errors of the body parser and the router keep their status, never their text.
      if (cause instanceof Error) return { status, message: describeRequestError(cause, status) };
      const body = exception.getResponse();
      const message =
        typeof body === 'object' && body !== null && 'message' in body
          ? (body as { message: string | string[] }).message
          : exception.message;
      return { status, message };
    }
    const parserError = exception as BodyParserError;
    const parserStatus = parserError?.status ?? parserError?.statusCode;
    if (typeof parserStatus === 'number' && parserStatus >= 400 && parserStatus < 500) {
      return { status: parserStatus, message: describeRequestError(parserError, parserStatus) };
    }
    this.logger.error(
      exception instanceof Error ? (exception.stack ?? exception.message) : String(exception),
    );
    return { status: 500, message: 'internal error' };
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
