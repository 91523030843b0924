import {
  SessionFieldNotJsonError,
  SessionStore,
  SessionStoreUnsupportedError,
  type SessionChange,
  type SessionFields,
  type SessionSummary,
  type StoredSession,
} from 'nestjs-session-sync';

/**
 * A custom store as an application would write one against the public API only: sessions live
 * in a Map, as JSON text, so that data is copied in and out and fields named `__proto__` stay
 * plain data. It has no sweeper (an expired session is dropped when it is next looked at), so it
 * cannot report expiries, and it does not implement `destroyByUser`: both gaps are declared to
 * the conformance suite, which then checks that the store owns up to them.
 */
export class MapStore extends SessionStore {
  readonly kind = 'map';
  private readonly sessions = new Map<string, string>();

  override get reportsExpiries(): boolean {
    return false;
  }

  async get(id: string): Promise<StoredSession | null> {
    return this.live(id);
  }

  async create(session: StoredSession): Promise<void> {
    this.sessions.set(session.id, encodeSession(session));
  }

  async commit(id: string, change: SessionChange): Promise<boolean> {
    const session = this.live(id);
    if (!session) return false;
    // Every field is encoded before anything is written: a value JSON cannot carry writes nothing.
    const set = Object.entries(change.set).map(([field, value]) => [field, encodeField(field, value)] as const);
    const data: SessionFields = { ...session.data };
    for (const field of change.unset) delete data[field];
    for (const [field, json] of set) {
      if (json === undefined) delete data[field];
      // A data property, never an assignment: `data['__proto__'] = …` would swap the prototype.
      else Object.defineProperty(data, field, { value: JSON.parse(json), enumerable: true, writable: true, configurable: true });
    }
    this.sessions.set(
      id,
      encodeSession({
        ...session,
        data,
        expiresAt: change.expiresAt,
        lastSeenAt: change.lastSeenAt,
        userId: change.userId === undefined ? session.userId : change.userId,
        client: change.client === undefined ? session.client : change.client,
      }),
    );
    return true;
  }

  async rotate(oldId: string, next: StoredSession): Promise<boolean> {
    if (!this.live(oldId)) return false;
    this.sessions.delete(oldId);
    this.sessions.set(next.id, encodeSession(next));
    return true;
  }

  async destroy(id: string): Promise<void> {
    this.sessions.delete(id);
  }

  async listByUser(userId: string): Promise<SessionSummary[]> {
    const owned = [...this.sessions.keys()]
      .map((id) => this.live(id))
      .filter((session): session is StoredSession => session !== null && session.userId === userId)
      .sort((a, b) => a.createdAt - b.createdAt);
    return owned.map(({ id, createdAt, lastSeenAt, expiresAt, client }) => ({
      id,
      createdAt,
      lastSeenAt,
      expiresAt,
      ...(client ? { client } : {}),
    }));
  }

  async destroyByUser(): Promise<string[]> {
    throw new SessionStoreUnsupportedError(this.kind, 'destroyByUser');
  }

  /** The session if it exists and has not expired; an expired one is dropped on the way. */
  private live(id: string): StoredSession | null {
    const json = this.sessions.get(id);
    if (json === undefined) return null;
    const session = JSON.parse(json) as StoredSession;
    if (session.expiresAt > Date.now()) return session;
    this.sessions.delete(id);
    return null;
  }
}

function encodeSession(session: StoredSession): string {
  return JSON.stringify(session);
}

/** The field's value as JSON, or undefined for a value JSON drops (the field is then removed). */
function encodeField(field: string, value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch {
    throw new SessionFieldNotJsonError(field);
  }
}
