import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { SessionModuleOptions } from './session.options.js';

export interface SessionModuleExtras {
  /**
   * Register the module globally, so `SessionGuard`, `SessionService` and `SessionStore` can be
   * injected in every module. @default true
   */
  isGlobal?: boolean;
}

export const {
  ConfigurableModuleClass: SessionConfigurableModule,
  MODULE_OPTIONS_TOKEN: SESSION_MODULE_OPTIONS,
  OPTIONS_TYPE: SESSION_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: SESSION_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<SessionModuleOptions>({
  moduleName: 'Session',
  optionsInjectionToken: 'SESSION:MODULE_OPTIONS',
})
  .setClassMethodName('forRoot')
  .setExtras<SessionModuleExtras>({ isGlobal: true }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();
