import type { NextFunction, Request, Response } from 'express';
import { ErrorCode, errorBody } from './app-error';

const hasBody = (req: Request) =>
  req.headers['transfer-encoding'] !== undefined ||
  (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');

/** A request that carries a body must say it is JSON: 415 otherwise, in the error shape. */
export function jsonOnly(req: Request, res: Response, next: NextFunction): void {
  if (hasBody(req) && !req.is(['application/json', 'application/*+json'])) {
    const body = errorBody(
      ErrorCode.UnsupportedMediaType,
      'the request body must be JSON (Content-Type: application/json)',
    );
    res.status(body.statusCode).json(body);
    return;
  }
  next();
}
