export { SessionMiddleware } from './session.middleware.js';
export { SessionCredentials } from './session.credentials.js';
export { exposeSessionOnPlatform, mountOnPlatform, sessionOf } from './session.http.js';
export type { SessionRequest } from './session.http.js';
export { readUserKey } from './session.users.js';
export type { RegenerateOptions, SessionCallback, SessionData, SessionMethods, SessionObject } from './session.object.js';
