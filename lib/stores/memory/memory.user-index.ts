/**
 * The memory store's per-user index: the ids of each signed-in user's sessions. Most users hold
 * one session, so a user's one id is kept as it is, and becomes a Set only with a second one
 * (back to the id alone when one is left): a Set costs about 150 bytes, a slot in the index Map a
 * fraction of that.
 */
export class MemoryUserIndex {
  private readonly idsByUser = new Map<string, string | Set<string>>();

  /** A snapshot, so callers may remove sessions while they walk it. */
  idsOf(userId: string): string[] {
    const ids = this.idsByUser.get(userId);
    if (ids === undefined) return [];
    return typeof ids === 'string' ? [ids] : [...ids];
  }

  add(id: string, userId: string | null): void {
    if (userId === null) return;
    const ids = this.idsByUser.get(userId);
    if (ids === undefined) this.idsByUser.set(userId, id);
    else if (typeof ids !== 'string') ids.add(id);
    else if (ids !== id) this.idsByUser.set(userId, new Set([ids, id]));
  }

  remove(id: string, userId: string | null): void {
    if (userId === null) return;
    const ids = this.idsByUser.get(userId);
    if (ids === undefined) return;
    if (typeof ids === 'string') {
      // Without this, every user who ever signed in would keep an entry alive.
      if (ids === id) this.idsByUser.delete(userId);
      return;
    }
    ids.delete(id);
    if (ids.size === 1) this.idsByUser.set(userId, ids.values().next().value as string);
  }
}
