/** Stable error codes raised by services; the HTTP edge maps them to statuses in one place. */
export enum ErrorCode {
  ValidationFailed = 'VALIDATION_FAILED',
  NotFound = 'NOT_FOUND',
  Conflict = 'CONFLICT',
  StreamUnavailable = 'STREAM_UNAVAILABLE',
  Overloaded = 'OVERLOADED',
  ShuttingDown = 'SHUTTING_DOWN',
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
