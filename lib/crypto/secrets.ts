import { SessionConfigError, SessionMessages } from '../session.errors.js';

/**
 * The `secret` option: one string or a list (the first signs, seals and derives keys; all of them
 * verify and open, so a secret can be retired without signing anyone out). Checked here, where
 * the keys are made, so that the module and a store built directly refuse the same secrets alike.
 */

export function isSecret(value: unknown): boolean {
  const secrets = Array.isArray(value) ? value : [value];
  return secrets.length > 0 && secrets.every((s) => typeof s === 'string' && s.length >= 32);
}

export function secretProblem(value: unknown): string {
  if (value === undefined || value === null || value === '') return SessionMessages.secretMissing();
  if (typeof value === 'string') return SessionMessages.secretTooShort('secret', value.length);
  if (!Array.isArray(value) || value.length === 0 || value.some((s) => typeof s !== 'string')) return SessionMessages.secretType(value);
  const index = value.findIndex((s: string) => s.length < 32);
  return SessionMessages.secretTooShort(`secret[${index}]`, value[index].length);
}

/**
 * The secrets as a list (first signs or seals, all verify or open).
 * @throws SessionConfigError when they are missing, not strings, or shorter than 32 characters.
 */
export function resolveSecrets(value: unknown): string[] {
  if (!isSecret(value)) throw new SessionConfigError([secretProblem(value)]);
  return typeof value === 'string' ? [value] : [...(value as string[])];
}
