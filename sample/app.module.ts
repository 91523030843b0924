import './session-data.js';
import { Module, ValidationPipe } from '@nestjs/common';
import type { DynamicModule } from '@nestjs/common';
import { APP_PIPE } from '@nestjs/core';
import { TerminusModule } from '@nestjs/terminus';
import { Registry } from 'prom-client';
import { SessionModule } from '../lib/index.js';
import { AuthController } from './auth.controller.js';
import { BodyDepthPipe } from './body-depth.pipe.js';
import { DemoController } from './demo.controller.js';
import { HealthController } from './health.controller.js';
import { MetricsController } from './metrics.controller.js';
import { sessionOptionsFromEnv } from './sample.config.js';
import { SignInPageController } from './sign-in-page.controller.js';

/** The sample application of SPEC §4, configured from an environment (process.env by default). */
@Module({})
export class AppModule {
  static forEnv(env: Record<string, string | undefined> = process.env): DynamicModule {
    // A registry per app: GET /metrics shows this node's sessions, even beside other apps in one process.
    const registry = new Registry();
    return {
      module: AppModule,
      imports: [SessionModule.forRoot({ ...sessionOptionsFromEnv(env), metrics: { registry } }), TerminusModule],
      controllers: [AuthController, DemoController, HealthController, SignInPageController, MetricsController],
      providers: [
        // Global pipes run in this order: the depth bound first, so ValidationPipe never meets a body too deep for it.
        { provide: APP_PIPE, useClass: BodyDepthPipe },
        { provide: APP_PIPE, useValue: new ValidationPipe({ whitelist: true, forbidNonWhitelisted: true }) },
        { provide: Registry, useValue: registry },
      ],
    };
  }
}
