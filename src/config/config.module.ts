import { Global, Module } from '@nestjs/common';
import { loadConfig, startedBy } from './app.config';
import { APP_CONFIG } from './config.tokens';

/** Provides the validated AppConfig; tests override APP_CONFIG with their own loadConfig(...). */
@Global()
@Module({
  providers: [
    {
      provide: APP_CONFIG,
      useFactory: () => loadConfig(process.env, startedBy(process.env)),
    },
  ],
  exports: [APP_CONFIG],
})
export class ConfigModule {}
