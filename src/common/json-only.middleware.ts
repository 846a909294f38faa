import type { NextFunction, Request, Response } from 'express';

const hasBody = (req: Request) =>
  req.headers['transfer-encoding'] !== undefined ||
  (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');

/** A request that carries a body must say it is JSON: 415 otherwise, in Nest's error shape. */
export function jsonOnly(req: Request, res: Response, next: NextFunction): void {
  if (hasBody(req) && !req.is(['application/json', 'application/*+json'])) {
    res.status(415).json({
      statusCode: 415,
      error: 'Unsupported Media Type',
      message: 'the request body must be JSON (Content-Type: application/json)',
    });
    return;
  }
  next();
}
