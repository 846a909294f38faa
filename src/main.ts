import 'reflect-metadata';
import { limitHeapGrowth } from './common/heap-growth';

limitHeapGrowth();

// The SDK warns on Node 20 about releases after January 2027; the versions are pinned.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
import { ConsoleLogger, LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { NestExpressApplication } from '@nestjs/platform-express';
import { Logger } from 'nestjs-pino';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AppModule } from './app.module';
import { configureApp } from './app.setup';
import { ConfigError, loadConfig, LogLevelName, startedBy } from './config/app.config';

const SHUTDOWN_DEADLINE_MS = 30_000;
const NEST_LEVELS: LogLevel[] = ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'];

/** Nest's levels at and above LOG_LEVEL (Nest calls info "log"). */
const nestLevels = (level: LogLevelName): LogLevel[] =>
  NEST_LEVELS.slice(0, NEST_LEVELS.indexOf(level === 'info' ? 'log' : level) + 1);

async function bootstrap(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env, startedBy(process.env));
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  // Start-up lines (emulators, provisioning retries) are written at once, as JSON, until the pino
  // logger takes over: buffering them would hide a slow start and lose them on a kill.
  const app = await NestFactory.create<NestExpressApplication>(AppModule, {
    bodyParser: false,
    logger: new ConsoleLogger({ json: true, logLevels: nestLevels(config.logLevel) }),
  });
  const logger = app.get(Logger);
  app.useLogger(logger);
  configureApp(app);
  await app.listen(config.port);
  const server = app.getHttpServer() as Server;
  // Longer than a load balancer's idle timeout (60 s on an ALB), so it never reuses a socket the
  // service has just closed (which it answers with a 502).
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  const { port } = server.address() as AddressInfo;
  logger.log(
    `listening on http://localhost:${port}: dashboard at http://localhost:${port}/, Swagger UI at /docs`,
    'Bootstrap',
  );

  // Stop taking connections first; app.close() then flushes the producer, lets every shard finish
  // and checkpoint its batch, releases the leases, and stops the embedded emulators last.
  const shutdown = (signal: string) => {
    logger.log(`${signal}: shutting down`, 'Bootstrap');
    setTimeout(() => {
      logger.error(`shutdown took more than ${SHUTDOWN_DEADLINE_MS} ms, exiting`, 'Bootstrap');
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS).unref();
    (app.getHttpServer() as Server).close();
    app.close().then(
      () => process.exit(0),
      (error: Error) => {
        logger.error(`shutdown failed: ${error.message}`, 'Bootstrap');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

void bootstrap().catch((error: Error) => {
  process.stderr.write(`start-up failed: ${error.message}\n`);
  process.exit(1);
});
