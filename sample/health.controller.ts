import { Controller, Get } from '@nestjs/common';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
import { SessionHealthIndicator } from '../lib/index.js';

@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly session: SessionHealthIndicator,
  ) {}

  /**
   * 200 when the session store answers, 503 otherwise, with terminus's report:
   * `{ status: 'ok', info: { session: { status: 'up', store: 'redis', latencyMs: 0.4 } }, error: {}, details: … }`.
   */
  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.session.isHealthy()]);
  }
}
