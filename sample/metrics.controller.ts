import { Controller, Get, Header } from '@nestjs/common';
import { Registry } from 'prom-client';

/** The sample's Prometheus endpoint: its session metrics (`metrics` option), in the text format. */
@Controller('metrics')
export class MetricsController {
  constructor(private readonly registry: Registry) {}

  @Get()
  @Header('Content-Type', Registry.PROMETHEUS_CONTENT_TYPE)
  @Header('Cache-Control', 'no-store')
  scrape(): Promise<string> {
    return this.registry.metrics();
  }
}
