export { generateSessionId, isSessionId, hashSessionId } from './session-id.js';
export { SessionIdSigner } from './signer.js';
export { isCanonicalCompact, loadJose } from './jose.js';
export type { Jose } from './jose.js';
export { SessionSealer } from './session-seal.js';
export type { OpenedSeal } from './session-seal.js';
export { SessionJwt } from './session-jwt.js';
export type { JwtSubject } from './session-jwt.js';
