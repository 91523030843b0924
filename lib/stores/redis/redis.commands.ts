/**
 * The Lua scripts of redis.scripts.ts as ioredis commands: defined once on a client, and typed.
 */

import type { IoredisClient } from './redis.client.js';
import { COMMIT_SCRIPT, CREATE_SCRIPT, DESTROY_IF_OWNED_SCRIPT, DESTROY_SCRIPT, INDEX_SCRIPT, UNLOCK_SCRIPT } from './redis.scripts.js';

/** The scripts, as ioredis exposes them once defined on a client. */
export interface ScriptCommands extends SessionScriptCommands {
  nssIndex(key: string, id: string, score: number, ttl: number): Promise<number>;
  nssUnlock(key: string, token: string): Promise<number>;
}

/** The scripts on one session, each defined twice: on the session key alone, and `…Marked` on the session and its expiry marker. */
const SESSION_SCRIPTS = {
  nssCommit: COMMIT_SCRIPT,
  nssCreate: CREATE_SCRIPT,
  nssDestroy: DESTROY_SCRIPT,
  nssDestroyIfOwned: DESTROY_IF_OWNED_SCRIPT,
} as const;
export type SessionScript = keyof typeof SESSION_SCRIPTS;
// A fixed key count per command, so that ioredis finds each command's key (its Cluster slot,
// its auto-pipeline) in the first argument.
type SessionScriptCommands = { [K in SessionScript]: (key: string, ...args: (string | number)[]) => Promise<unknown> } & {
  [K in SessionScript as `${K}Marked`]: (key: string, marker: string, ...args: (string | number)[]) => Promise<unknown>;
};

export type ScriptedClient = IoredisClient & ScriptCommands;
export type WritePipeline = ScriptCommands & ReturnType<IoredisClient['pipeline']>;

export function defineScripts(client: IoredisClient): ScriptedClient {
  const scripted = client as ScriptedClient;
  // Defined once per client, even when several stores share it.
  if (typeof scripted.nssCommit === 'function') return scripted;
  for (const [name, lua] of Object.entries(SESSION_SCRIPTS)) {
    client.defineCommand(name, { numberOfKeys: 1, lua });
    client.defineCommand(`${name}Marked`, { numberOfKeys: 2, lua });
  }
  client.defineCommand('nssIndex', { numberOfKeys: 1, lua: INDEX_SCRIPT });
  client.defineCommand('nssUnlock', { numberOfKeys: 1, lua: UNLOCK_SCRIPT });
  return scripted;
}
