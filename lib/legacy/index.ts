export { LegacyCookieVerifier } from './legacy-cookie.js';
