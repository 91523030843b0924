/**
 * The tests behind the options classes' own rules (a secret, a store, a user key, a logger, a
 * metrics registry), each with the message that says what is wrong. The checks the stores reuse
 * when they are built directly live with them: storeConfigProblems() in
 * stores/toolkit/options-check.ts, resolveSecrets() in crypto/secrets.ts.
 */
import { SessionMessages } from './session.errors.js';
import { isPlainObject } from './session.validation.js';
import { SessionStore } from './stores/session-store.js';
import { STORE_TYPES } from './stores/store-config.js';
import type { StoreConfig } from './stores/store-config.js';

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
