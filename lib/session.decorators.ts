import { createParamDecorator, SetMetadata } from '@nestjs/common';
import type { ExecutionContext } from '@nestjs/common';
import { ALLOW_ANONYMOUS_KEY } from './session.constants.js';
import { sessionOf } from './pipeline/index.js';
import type { SessionObject } from './pipeline/index.js';

/**
 * The current session (`@Session()`), or one of its fields (`@Session('userId')`).
 *
 * @example
 * ```ts
 * @Post('visits')
 * count(@Session() session: Session) {
 *   session.visits = (session.visits ?? 0) + 1;
 *   return { visits: session.visits };
 * }
 * ```
 */
export const Session = createParamDecorator((field: string | undefined, ctx: ExecutionContext) => {
  const session = sessionOf(ctx) as (SessionObject & Record<string, unknown>) | undefined;
  return field === undefined ? session : session?.[field];
});

/** The type of what `@Session()` gives: data fields (see `SessionData`) and methods. */
export type Session = SessionObject;

/**
 * Exempts a route or a controller from `SessionGuard` (useful when the guard is global).
 * @example
 * ```ts
 * @AllowAnonymous()
 * @Get('health')
 * health() {}
 * ```
 */
export const AllowAnonymous = () => SetMetadata(ALLOW_ANONYMOUS_KEY, true);
