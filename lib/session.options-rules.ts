/**
 * The tests behind the options classes' own rules (a secret, a store, a user key, a logger, a
 * metrics registry), each with the message that says what is wrong, and the two checks the stores
 * reuse when they are built directly: storeConfigProblems() and resolveSecrets().
 */
import { SessionConfigError, SessionMessages } from './session.errors.js';
import { copyOptions, isPlainObject, problemsOf } from './session.validation.js';
import { SessionStore } from './stores/session-store.js';
import { STORE_CONFIG_CLASSES, STORE_TYPES } from './stores/store-config.js';
import type { StoreConfig } from './stores/store-config.js';

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

export function isStore(value: unknown): boolean {
  return value instanceof SessionStore || isStoreConfig(value);
}

export function isStoreConfig(value: unknown): value is StoreConfig {
  return isPlainObject(value) && STORE_TYPES.has(value.type);
}

export function storeProblem(value: unknown): string {
  if (!isPlainObject(value)) return SessionMessages.storeShape(value);
  return SessionMessages.storeType(value.type, [...STORE_TYPES]);
}

/**
 * What is wrong with a store config object, checked against its config class: the same check
 * whether the config comes through the module's options or a store is built directly.
 */
export function storeConfigProblems(config: StoreConfig): string[] {
  const ConfigClass = STORE_CONFIG_CLASSES[config.type];
  const problems: string[] = [];
  const instance = copyOptions(new ConfigClass(), config as object as Record<string, unknown>, 'store.', problems);
  return [...problems, ...problemsOf(instance, 'store.'), ...(ConfigClass.problems?.(instance) ?? [])];
}

/** The cookie store, as a config object or an instance (checked by kind: no import cycle). */
export function isCookieStore(store: unknown): boolean {
  return store instanceof SessionStore ? store.kind === 'cookie' : isPlainObject(store) && store.type === 'cookie';
}

export function isUserKey(value: unknown): boolean {
  return typeof value === 'string' && value.split('.').every((s) => s.length > 0 && s !== '__proto__' && s !== 'constructor' && s !== 'prototype');
}

/** An object with these methods: how loggers and registries are recognised without their classes. */
function hasMethods(value: unknown, methods: readonly string[]): boolean {
  const object = value as Record<string, unknown> | null;
  return typeof object === 'object' && object !== null && methods.every((m) => typeof object[m] === 'function');
}

export function isLogger(value: unknown): boolean {
  return hasMethods(value, ['log', 'warn', 'error']);
}

/** Duck-typed: prom-client is not loaded to check, and an app may hold another copy of it. */
export function isRegistry(value: unknown): boolean {
  return hasMethods(value, ['metrics', 'registerMetric', 'getSingleMetric']);
}
