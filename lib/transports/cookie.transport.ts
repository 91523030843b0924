import { parse, serialize } from 'cookie';
import type { ResolvedSessionOptions } from '../session.options.js';

/** Reads the session cookie from a `Cookie` header and writes `Set-Cookie` values for it. */
export class CookieTransport {
  /**
   * @param maxLength longest value worth looking at (the credential format's longest): anything
   *   longer is not ours and is dropped before any crypto work.
   */
  constructor(
    private readonly cookie: ResolvedSessionOptions['cookie'],
    private readonly maxLength: number,
  ) {}

  /**
   * The raw session cookie value; null when the request carries the session cookie but not one
   * we could use (longer than any credential, or quoted); undefined when it carries none. The
   * difference matters: a request that brought the cookie came in on the cookie, usable or not.
   */
  read(cookieHeader: string | undefined): string | null | undefined {
    if (!cookieHeader || !cookieHeader.includes(this.cookie.name)) return undefined;
    const value = parse(cookieHeader)[this.cookie.name];
    if (value === undefined) return undefined;
    return value.length <= this.maxLength && !value.startsWith('"') ? value : null;
  }

  /** `Set-Cookie` for a credential (a signed id or a sealed session). */
  set(credential: string, secure: boolean): string {
    // Rounded up: a Max-Age of 0 would delete the cookie.
    const maxAge = this.cookie.maxAge === undefined ? undefined : Math.ceil(this.cookie.maxAge / 1000);
    return this.serialize(credential, secure, maxAge);
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
