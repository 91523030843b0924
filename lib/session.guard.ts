import { Injectable } from '@nestjs/common';
import type { CanActivate, ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ALLOW_ANONYMOUS_KEY } from './session.constants.js';
import { InjectSessionOptions } from './session.constants.js';
import { SessionNotSignedInError } from './session.errors.js';
import { readUserKey, sessionOf } from './pipeline/index.js';
import type { SessionObject } from './pipeline/index.js';
import type { ResolvedSessionOptions } from './session.options.js';

/**
 * Lets a request through only when its session is signed in (the `userKey` field is set);
 * otherwise 401 with a JSON body (`code: 'SESSION_NOT_SIGNED_IN'`). Use it per route, per
 * controller, or as `APP_GUARD` with `@AllowAnonymous()` on the public routes. Each step is a
 * protected method a subclass can override (e.g. to also check a role).
 *
 * @example
 * ```ts
 * @UseGuards(SessionGuard)
 * @Get('profile')
 * profile(@Session('userId') userId: string) {
 *   return { userId };
 * }
 * ```
 */
@Injectable()
export class SessionGuard implements CanActivate {
  constructor(
    protected readonly reflector: Reflector,
    @InjectSessionOptions() protected readonly options: ResolvedSessionOptions,
  ) {}

  canActivate(context: ExecutionContext): boolean {
    if (this.isAnonymousAllowed(context)) return true;
    if (this.isSignedIn(this.getSession(context))) return true;
    throw this.deny(context);
  }

  protected isAnonymousAllowed(context: ExecutionContext): boolean {
    return this.reflector.getAllAndOverride<boolean>(ALLOW_ANONYMOUS_KEY, [context.getHandler(), context.getClass()]) === true;
  }

  protected getSession(context: ExecutionContext): SessionObject | undefined {
    return context.getType() === 'http' ? sessionOf(context) : undefined;
  }

  protected isSignedIn(session: SessionObject | undefined): boolean {
    const user = readUserKey(session, this.options.userKey);
    return user !== undefined && user !== null && user !== '';
  }

  protected deny(_context: ExecutionContext): Error {
    return new SessionNotSignedInError();
  }
}
