export { CookieTransport } from './cookie.transport.js';
