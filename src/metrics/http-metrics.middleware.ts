import type { NextFunction, Request, Response } from 'express';
import type { MetricsService } from './metrics.service';

/** The label of a request no route matched (404s, static Swagger assets): never the raw URL. */
export const UNMATCHED_ROUTE = 'unmatched';
// Nest mounts module middleware (the request logger) on a catch-all route: a request that no
// controller matched still carries that route at the end.
const MIDDLEWARE_ROUTES = new Set(['{/*splat}', '/{*splat}', '*', '/*']);

function routeOf(req: Request): string {
  const path = (req.route as { path?: unknown } | undefined)?.path;
  return typeof path === 'string' && !MIDDLEWARE_ROUTES.has(path)
    ? `${req.baseUrl}${path}`
    : UNMATCHED_ROUTE;
}

/**
 * Counts every request and observes its duration by route pattern (`/cities/:cityId/latest`),
 * method and status (`aborted` when the client went away first), once the response is finished or
 * the connection closed.
 */
export function httpMetrics(metrics: MetricsService) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const stopTimer = metrics.httpDuration.startTimer();
    let done = false;
    const record = () => {
      if (done) return;
      done = true;
      const labels = {
        route: routeOf(req),
        method: req.method,
        // A connection closed before the response was sent has no status of its own.
        status: res.writableFinished ? String(res.statusCode) : 'aborted',
      };
      metrics.httpRequests.inc(labels);
      stopTimer(labels);
    };
    res.once('finish', record);
    res.once('close', record);
    next();
  };
}
