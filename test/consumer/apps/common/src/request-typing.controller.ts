import { Controller, Get, Req } from '@nestjs/common';
import type { Request } from 'express';

/**
 * Not part of the README quick start: it proves that `req.session` is typed on Express's
 * `Request` once the package is imported somewhere in the program (here by app.module.ts), with
 * the fields declared in `SessionData`. Without that augmentation, `tsc` stops here with TS2339.
 */
@Controller()
export class RequestTypingController {
  @Get('whoami')
  whoami(@Req() req: Request) {
    return { userId: req.session.userId ?? null };
  }
}
