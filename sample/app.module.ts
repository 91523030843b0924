import './session-data.js';
import { Module, ValidationPipe } from '@nestjs/common';
import type { DynamicModule } from '@nestjs/common';
import { APP_PIPE } from '@nestjs/core';
import { SessionModule } from '../lib/index.js';
import { AuthController } from './auth.controller.js';
import { DemoController } from './demo.controller.js';
import { HealthController } from './health.controller.js';
import { sessionOptionsFromEnv } from './sample.config.js';

/** The sample application of SPEC §4, configured from an environment (process.env by default). */
@Module({})
export class AppModule {
  static forEnv(env: Record<string, string | undefined> = process.env): DynamicModule {
    return {
      module: AppModule,
      imports: [SessionModule.forRoot(sessionOptionsFromEnv(env))],
      controllers: [AuthController, DemoController, HealthController],
      providers: [
        { provide: APP_PIPE, useValue: new ValidationPipe({ whitelist: true, forbidNonWhitelisted: true }) },
      ],
    };
  }
}
