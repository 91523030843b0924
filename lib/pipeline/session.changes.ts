import { SessionFieldNotJsonError } from '../session.errors.js';
import { defineField, withKnownJson } from '../stores/index.js';
import type { SessionFields } from '../stores/session-store.js';

/** A commit's delta: fields set and removed, each touched field's JSON now, and how many set fields are new. */
export interface SessionDiff {
  set: SessionFields;
  unset: string[];
  /** The JSON of every touched field as it is now: the baseline once the write succeeds. */
  current: Map<string, string | undefined>;
  /** Set fields the stored session did not have (what the field limit counts). */
  added: number;
}

const toJson = (field: string, value: unknown): string | undefined => {
  try {
    return JSON.stringify(value);
  } catch {
    throw new SessionFieldNotJsonError(field);
  }
};

const jsonOf = (field: string, value: unknown): string | undefined => (value === undefined ? undefined : toJson(field, value));

/**
 * Change tracking of one session's data. The first time a field is touched (read, written or
 * deleted), its JSON is remembered; a diff compares only those fields again. So a nested
 * mutation (`session.cart.items.push(x)`) is seen, and a request that touches two fields of a
 * fifty-field session serializes two fields, not fifty.
 */
export class ChangeTracker {
  /** Each touched field's JSON as stored (undefined: not in the stored session). */
  private readonly originals = new Map<string, string | undefined>();

  /** Notes a field's stored JSON before it is first read or written. */
  remember(data: SessionFields, field: string): void {
    if (!this.originals.has(field)) this.originals.set(field, jsonOf(field, data[field]));
  }

  /** True when the field has been touched in this request (since the last baseline). */
  touched(field: string): boolean {
    return this.originals.has(field);
  }

  /** Whether a touched field differs from what is stored; a field that is not JSON counts as changed, so the commit reports it. */
  changed(data: SessionFields): boolean {
    for (const [field, original] of this.originals) {
      try {
        if (jsonOf(field, data[field]) !== original) return true;
      } catch {
        return true;
      }
    }
    return false;
  }

  /** The delta to write; a value JSON cannot carry fails here with SessionFieldNotJsonError, before any write. */
  diff(data: SessionFields): SessionDiff {
    const set: SessionFields = Object.create(null);
    const unset: string[] = [];
    const current = new Map<string, string | undefined>();
    let added = 0;
    for (const [field, original] of this.originals) {
      const value = data[field];
      const json = jsonOf(field, value);
      current.set(field, json);
      if (json === original) continue;
      if (json === undefined) unset.push(field);
      else defineField(set, field, value);
      if (original === undefined && json !== undefined) added += 1;
    }
    // The store writes `set` with the JSON made here (encodeFields), not serialized again.
    return { set: withKnownJson(set, current), unset, current, added };
  }

  /** A write succeeded: later diffs start from what it wrote. */
  settle(current: Map<string, string | undefined>): void {
    for (const [field, json] of current) this.originals.set(field, json);
  }

  /** The data was emptied: "empty" is the new baseline. */
  reset(): void {
    this.originals.clear();
  }
}
