import { SessionConfigError, SessionMessages } from '../session.errors.js';

/**
 * The `encryptionKeys` option: one key or a list of them, each 32 random bytes written in
 * base64url (43 characters). The first encrypts; every one decrypts, so a key can be retired
 * without signing anyone out. Checked here, where the keys are read, so that the module and a
 * direct caller refuse the same keys alike.
 */

const KEY_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/** 43 base64url characters that are the canonical text of 32 bytes (so no two texts are one key). */
const isKeyText = (key: string): boolean => KEY_PATTERN.test(key) && Buffer.from(key, 'base64url').toString('base64url') === key;

function asList(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [value];
}

/** The first problem with the value, or undefined when it is a key or a list of distinct keys. */
function keysProblem(value: unknown): string | undefined {
  const keys = asList(value);
  if (keys.length === 0 || keys.some((key) => typeof key !== 'string')) return SessionMessages.encryptionKeysType(value);
  const path = (index: number): string => (Array.isArray(value) ? `encryptionKeys[${index}]` : 'encryptionKeys');
  const bad = keys.findIndex((key) => !isKeyText(key as string));
  // The length only: a key that is almost right must not end up in a log.
  if (bad >= 0) return SessionMessages.encryptionKeyShape(path(bad), (keys[bad] as string).length);
  const repeated = keys.findIndex((key, index) => keys.indexOf(key) !== index);
  return repeated >= 0 ? SessionMessages.encryptionKeyRepeated(path(repeated)) : undefined;
}

export function isEncryptionKeys(value: unknown): boolean {
  return keysProblem(value) === undefined;
}

export function encryptionKeysProblem(value: unknown): string {
  return keysProblem(value) ?? '';
}

/**
 * The keys as bytes, the encrypting one first.
 * @throws SessionConfigError when one is not 32 bytes of base64url, or one repeats.
 */
export function resolveEncryptionKeys(value: unknown): Buffer[] {
  const problem = keysProblem(value);
  if (problem !== undefined) throw new SessionConfigError([problem]);
  return asList(value).map((key) => Buffer.from(key as string, 'base64url'));
}
