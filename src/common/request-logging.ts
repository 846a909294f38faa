import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { Params } from 'nestjs-pino';
import { pino, stdTimeFunctions, type Level, type Logger } from 'pino';
import { pinoHttp } from 'pino-http';
import type { AppConfig, LogLevelName } from '../config/app.config';

export const REQUEST_ID_HEADER = 'x-request-id';
/** A caller's request id is kept only when it cannot forge or flood a log line. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;
const SECRET_PARAM = /key|token|secret|password|auth|signature/i;
const PINO_LEVEL: Record<LogLevelName, Level> = {
  fatal: 'fatal',
  error: 'error',
  warn: 'warn',
  info: 'info',
  debug: 'debug',
  verbose: 'trace',
};

interface SerializedRequest {
  id: string;
  method: string;
  url: string;
  remoteAddress?: string;
  raw?: { ip?: string };
}

/** The caller's X-Request-Id when sane, else a fresh UUID; echoed in the response. */
export function requestId(req: IncomingMessage, res: ServerResponse): string {
  const given = req.headers[REQUEST_ID_HEADER];
  const id = typeof given === 'string' && SANE_REQUEST_ID.test(given) ? given : randomUUID();
  res.setHeader('X-Request-Id', id);
  return id;
}

/** The URL as logged: query parameters that look like credentials are redacted. */
export function loggedUrl(url: string): string {
  const queryAt = url.indexOf('?');
  if (queryAt < 0) return url;
  const query = new URLSearchParams(url.slice(queryAt + 1));
  const secrets = [...query.keys()].filter((name) => SECRET_PARAM.test(name));
  if (secrets.length === 0) return url;
  for (const name of secrets) query.set(name, '[Redacted]');
  return `${url.slice(0, queryAt)}?${query.toString()}`;
}

/** The process's JSON logger at LOG_LEVEL; credentials never written, even if an object holds them. */
export function rootLogger(config: Pick<AppConfig, 'logLevel'>): Logger {
  return pino({
    level: PINO_LEVEL[config.logLevel],
    timestamp: stdTimeFunctions.isoTime,
    redact: {
      paths: [
        'req.headers["x-api-key"]',
        'req.headers.authorization',
        'req.headers.cookie',
        'res.headers["set-cookie"]',
      ],
      censor: '[Redacted]',
    },
  });
}

/**
 * nestjs-pino on the root logger: `new Logger(Name)` lines go through it, with the request id
 * inside a request. The request logger itself is `accessLog`, mounted first by configureApp.
 */
export function loggerParams(root: Logger): Params {
  return { pinoHttp: { logger: root }, useExisting: true };
}

/**
 * One access line per request with its id, method, url, client address, status and duration.
 * Mounted before every other middleware, so that requests refused early (415, 413) are logged too.
 */
export function accessLog(root: Logger) {
  return pinoHttp({
    logger: root,
    genReqId: requestId,
    quietReqLogger: true,
    // A 5xx is the server's problem, but readiness answers 503 by design: warn, not error.
    customLogLevel: (_req, res, error) =>
      error !== undefined || res.statusCode >= 500 ? 'warn' : 'info',
    serializers: {
      // With TRUST_PROXY, Express's req.ip is the client behind the load balancer.
      req: (req: SerializedRequest) => ({
        id: req.id,
        method: req.method,
        url: loggedUrl(req.url),
        ip: req.raw?.ip ?? req.remoteAddress,
      }),
      res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
    },
  });
}
