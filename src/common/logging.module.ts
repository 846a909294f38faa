import { Global, Module } from '@nestjs/common';
import { AppConfig } from '../config/app.config';
import { APP_CONFIG } from '../config/config.tokens';
import { ROOT_LOGGER } from './logging.tokens';
import { rootLogger } from './request-logging';

@Global()
@Module({
  providers: [
    {
      provide: ROOT_LOGGER,
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig) => rootLogger(config),
    },
  ],
  exports: [ROOT_LOGGER],
})
export class LoggingModule {}
