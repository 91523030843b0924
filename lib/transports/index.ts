export { CookieTransport } from './cookie.transport.js';
export { readBearerToken, SESSION_TOKEN_HEADER } from './header.transport.js';
