/** The memory store's per-user index: the ids of each signed-in user's sessions. */
export class MemoryUserIndex {
  private readonly idsByUser = new Map<string, Set<string>>();

  /** A snapshot, so callers may remove sessions while they walk it. */
  idsOf(userId: string): string[] {
    return [...(this.idsByUser.get(userId) ?? [])];
  }

  add(id: string, userId: string | null): void {
    if (userId === null) return;
    let ids = this.idsByUser.get(userId);
    if (!ids) this.idsByUser.set(userId, (ids = new Set()));
    ids.add(id);
  }

  remove(id: string, userId: string | null): void {
    if (userId === null) return;
    const ids = this.idsByUser.get(userId);
    if (!ids) return;
    ids.delete(id);
    // Without this, every user who ever signed in would keep an empty set alive.
    if (ids.size === 0) this.idsByUser.delete(userId);
  }
}
