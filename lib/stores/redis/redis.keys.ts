/**
 * Where the Redis store keeps what: every key of one session is `<prefix>{<id>}` (the id is the
 * hash tag, so a session's keys share one Cluster slot), and every key of one user is
 * `<prefix>user:{<userId>}…`.
 */
export class RedisKeys {
  constructor(private readonly prefix: string) {}

  session(id: string): string {
    return `${this.prefix}{${id}}`;
  }

  /** The session's expiry marker (see redis.scripts.ts), in the session's slot. */
  marker(id: string): string {
    return `${this.session(id)}:x`;
  }

  index(userId: string): string {
    return `${this.prefix}user:{${userId}}`;
  }

  /** In the index's slot: the same hash tag. */
  lock(userId: string): string {
    return `${this.index(userId)}:lock`;
  }

  /** The session id of a session key of this prefix; undefined for any other key (an index, a marker, a lock). */
  sessionIdOf(key: string): string | undefined {
    const head = `${this.prefix}{`;
    if (!key.startsWith(head) || !key.endsWith('}')) return undefined;
    const id = key.slice(head.length, -1);
    return id === '' || /[{}]/.test(id) ? undefined : id;
  }
}
