import { ValidationPipe } from '@nestjs/common';
import helmet from 'helmet';
import { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { API_KEY_HEADER, API_KEY_SCHEME } from './common/api-key.guard';
import { completeDocument } from './common/openapi';
import { HttpExceptionFilter } from './common/http-exception.filter';
import { jsonOnly } from './common/json-only.middleware';
import { ROOT_LOGGER } from './common/logging.tokens';
import { accessLog } from './common/request-logging';
import { AppConfig } from './config/app.config';
import { APP_CONFIG } from './config/config.tokens';
import { httpMetrics } from './metrics/http-metrics.middleware';
import { MetricsService } from './metrics/metrics.service';

export const BODY_LIMIT = '1mb';

/**
 * Everything main.ts and the end-to-end tests share: trust proxy, access log, HTTP metrics, body limit,
 * validation, the error filter, Swagger. The application must be created with
 * `{ bodyParser: false }`.
 */
export function configureApp(app: NestExpressApplication): NestExpressApplication {
  const config = app.get<AppConfig>(APP_CONFIG);
  app.set('trust proxy', config.trustProxy);
  app.disable('x-powered-by');
  app.use(accessLog(app.get(ROOT_LOGGER)));
  app.use(httpMetrics(app.get(MetricsService)));
  app.use(helmet());
  app.use(jsonOnly);
  app.useBodyParser('json', { limit: BODY_LIMIT });
  app.useGlobalPipes(
    new ValidationPipe({
      transform: true,
      whitelist: true,
      forbidNonWhitelisted: true,
      forbidUnknownValues: true,
      validationError: { target: false, value: false },
    }),
  );
  app.useGlobalFilters(new HttpExceptionFilter());
  const document = completeDocument(
    SwaggerModule.createDocument(
      app,
      new DocumentBuilder()
        .setTitle('Air-quality speed layer')
        .setDescription(
          'Real-time ingestion of air-quality measurements through Kinesis into a DynamoDB speed layer. ' +
            'AQI values are US EPA indices computed from the measured concentrations (2024 PM2.5 breakpoints); ' +
            'they are indicators, not the official 24-hour AQI.',
        )
        .setVersion('0.1.0')
        .addApiKey({ type: 'apiKey', in: 'header', name: API_KEY_HEADER }, API_KEY_SCHEME)
        .build(),
    ),
    config,
  );
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs-json' });
  return app;
}
