import { parse, serialize } from 'cookie';
import type { ResolvedSessionOptions } from '../session.options.js';

/**
 * Longest cookie value worth looking at: a signed id is 87 characters. Anything longer is not
 * ours and is dropped before any parsing or crypto work.
 */
const MAX_VALUE_LENGTH = 128;

/** Reads the session cookie from a `Cookie` header and writes `Set-Cookie` values for it. */
export class CookieTransport {
  constructor(private readonly cookie: ResolvedSessionOptions['cookie']) {}

  /** The raw session cookie value, or undefined when the request carries none we could use. */
  read(cookieHeader: string | undefined): string | undefined {
    if (!cookieHeader || !cookieHeader.includes(this.cookie.name)) return undefined;
    const value = parse(cookieHeader)[this.cookie.name];
    return value !== undefined && value.length <= MAX_VALUE_LENGTH ? value : undefined;
  }

  /** `Set-Cookie` for a signed id. */
  set(signedId: string, secure: boolean): string {
    // Rounded up: a Max-Age of 0 would delete the cookie.
    const maxAge = this.cookie.maxAge === undefined ? undefined : Math.ceil(this.cookie.maxAge / 1000);
    return this.serialize(signedId, secure, maxAge);
  }

  /** `Set-Cookie` that removes the cookie from the browser. */
  clear(secure: boolean): string {
    return this.serialize('', secure, 0, new Date(0));
  }

  private serialize(value: string, secure: boolean, maxAge?: number, expires?: Date): string {
    const { name, path, domain, httpOnly, sameSite, partitioned } = this.cookie;
    return serialize(name, value, { path, domain, httpOnly, sameSite, partitioned, secure, maxAge, expires });
  }
}
