export { generateSessionId, isSessionId, maskSessionId } from './session-id.js';
export { SessionIdSigner } from './signer.js';
