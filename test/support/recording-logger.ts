import type { LoggerService } from '@nestjs/common';

/** A logger that keeps what it is told, so cases can look at the warnings a store or the module gave. */
export class RecordingLogger implements LoggerService {
  readonly warnings: string[] = [];
  log(): void {}
  error(): void {}
  warn(message: unknown): void {
    this.warnings.push(String(message));
  }
}
