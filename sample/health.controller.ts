import { Controller, Get, ServiceUnavailableException } from '@nestjs/common';
import { SessionStore } from '../lib/index.js';

@Controller('health')
export class HealthController {
  constructor(private readonly store: SessionStore) {}

  /** 200 when the session store answers, 503 otherwise. */
  @Get()
  async check() {
    try {
      await this.store.ping();
    } catch {
      throw new ServiceUnavailableException({ status: 'down', store: this.store.kind });
    }
    return { status: 'ok', store: this.store.kind };
  }
}
