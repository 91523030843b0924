import { describe, expect, it } from '@jest/globals';
import {
  credentialDecision,
  expiryFrom,
  hasTimedOut,
  plannedWrite,
  shouldForbidCaching,
  shouldSaveNew,
  shouldTouch,
} from '../../lib/pipeline/session.decisions.js';
import type { CommittedSession, WriteFacts } from '../../lib/pipeline/session.decisions.js';

const MINUTE = 60_000;
const facts = (overrides: Partial<WriteFacts>): WriteFacts => ({
  stored: true,
  rotating: false,
  changed: false,
  saveRequested: false,
  touchRequested: false,
  touchDue: false,
  ...overrides,
});

describe('the pipeline decisions', () => {
  describe('plannedWrite: what a commit writes', () => {
    it('creates a new session only once it holds data, or when save() or saveUninitialized asks for it', () => {
      expect(plannedWrite(facts({ stored: false }), false)).toBe('none');
      expect(plannedWrite(facts({ stored: false, changed: true }), false)).toBe('create');
      expect(plannedWrite(facts({ stored: false, saveRequested: true }), false)).toBe('create');
      expect(plannedWrite(facts({ stored: false }), true)).toBe('create');
    });

    it('never touches a session that is not stored, however due', () => {
      expect(plannedWrite(facts({ stored: false, touchRequested: true, touchDue: true }), false)).toBe('none');
    });

    it('moves a session whose id rotation is pending, changed or not', () => {
      expect(plannedWrite(facts({ rotating: true }), false)).toBe('rotate');
      expect(plannedWrite(facts({ rotating: true, changed: true }), false)).toBe('rotate');
    });

    it('writes a delta for a changed stored session, and touches an unchanged one only when asked or due', () => {
      expect(plannedWrite(facts({ changed: true, touchDue: true }), false)).toBe('commit');
      expect(plannedWrite(facts({ touchRequested: true }), false)).toBe('touch');
      expect(plannedWrite(facts({ touchDue: true }), false)).toBe('touch');
      expect(plannedWrite(facts({}), true)).toBe('none');
    });

    /** The labels of the cases in which plannedWrite read `fact` (a getter that counts its reads, answering false). */
    const askedFor = (
      fact: 'changed' | 'touchDue',
      cases: Array<[label: string, overrides: Partial<WriteFacts>, saveUninitialized?: boolean]>,
    ): string[] => {
      const asked: string[] = [];
      for (const [label, overrides, saveUninitialized = false] of cases) {
        const probed = Object.defineProperty(facts(overrides), fact, {
          get: () => {
            asked.push(label);
            return false;
          },
        });
        plannedWrite(probed, saveUninitialized);
      }
      return asked;
    };

    it('asks whether a touch is due only of a stored, unchanged session with no rotation or touch pending', () => {
      const asked = askedFor('touchDue', [
        ['new', { stored: false }],
        ['rotating', { rotating: true }],
        ['changed', { changed: true }],
        ['touch asked', { touchRequested: true }],
        ['unchanged', {}],
      ]);

      expect(asked).toEqual(['unchanged']);
    });

    it('asks whether data changed (a JSON.stringify of each touched field) only when the answer depends on it', () => {
      const asked = askedFor('changed', [
        ['rotating', { rotating: true }],
        ['new, saveUninitialized', { stored: false }, true],
        ['new, save() called', { stored: false, saveRequested: true }],
        ['new', { stored: false }],
        ['stored', {}],
      ]);

      expect(asked).toEqual(['new', 'stored']);
    });

    it('saves a new session on the same rule plannedWrite uses', () => {
      expect(shouldSaveNew({ changed: false, saveRequested: false }, false)).toBe(false);
      expect(shouldSaveNew({ changed: true, saveRequested: false }, false)).toBe(true);
    });
  });

  describe('timeouts and touches', () => {
    const options = { idleTimeout: 30 * MINUTE, absoluteTimeout: 60 * MINUTE };

    it('has timed out once idle for idleTimeout, or absoluteTimeout after creation, and not before', () => {
      const now = 100 * MINUTE;
      expect(hasTimedOut({ createdAt: now - 10 * MINUTE, lastSeenAt: now - 29 * MINUTE }, options, now)).toBe(false);
      expect(hasTimedOut({ createdAt: now - 10 * MINUTE, lastSeenAt: now - 30 * MINUTE }, options, now)).toBe(true);
      expect(hasTimedOut({ createdAt: now - 60 * MINUTE, lastSeenAt: now }, options, now)).toBe(true);
      expect(hasTimedOut({ createdAt: 0, lastSeenAt: now }, { ...options, absoluteTimeout: false }, now)).toBe(false);
    });

    it('slides the expiry by idleTimeout, capped by the absolute deadline', () => {
      expect(expiryFrom(0, 0, options)).toBe(30 * MINUTE);
      expect(expiryFrom(40 * MINUTE, 0, options)).toBe(60 * MINUTE);
      expect(expiryFrom(40 * MINUTE, 0, { ...options, absoluteTimeout: false })).toBe(70 * MINUTE);
    });

    it('touches at most once per touchAfter, and only when the expiry would move later', () => {
      expect(shouldTouch(10_000, 5_000, 5_000, 50_000, 40_000)).toBe(true);
      expect(shouldTouch(10_000, 5_001, 5_000, 50_000, 40_000)).toBe(false);
      expect(shouldTouch(10_000, 0, 5_000, 40_000, 40_000)).toBe(false);
    });
  });

  describe('credentialDecision: what the client holds next', () => {
    const committed = (overrides: Partial<CommittedSession>): CommittedSession => ({
      id: 'stored',
      userId: 'u1',
      expiresAt: 1_000,
      writes: 1,
      failed: false,
      destroyedHere: false,
      ...overrides,
    });

    it('hands out a credential for a new or moved session, made for its id, user and expiry', () => {
      expect(credentialDecision(committed({}), null, false)).toEqual({ action: 'set', subject: { id: 'stored', userId: 'u1', expiresAt: 1_000 } });
      expect(credentialDecision(committed({}), 'old', false)).toMatchObject({ action: 'set' });
    });

    it('leaves the client as it is when its credential already names the session, unless the credential renews on writes and one was made', () => {
      expect(credentialDecision(committed({}), 'stored', false)).toEqual({ action: 'none' });
      expect(credentialDecision(committed({}), 'stored', true)).toMatchObject({ action: 'set' });
      expect(credentialDecision(committed({ writes: 0 }), 'stored', true)).toEqual({ action: 'none' });
    });

    it('hands out nothing after a failed commit', () => {
      expect(credentialDecision(committed({ failed: true }), null, true)).toEqual({ action: 'none' });
    });

    it('clears the credential only when this request destroyed the session the client held', () => {
      expect(credentialDecision(committed({ id: null, destroyedHere: true }), 'stored', false)).toEqual({ action: 'clear' });
      expect(credentialDecision(committed({ id: null, destroyedHere: true }), null, false)).toEqual({ action: 'none' });
      expect(credentialDecision(committed({ id: null }), 'unknown', false)).toEqual({ action: 'none' });
    });
  });

  it('forbids caching of a signed-in session’s responses while noStoreWhenSignedIn is on', () => {
    expect(shouldForbidCaching({ userId: 'u1' }, { noStoreWhenSignedIn: true })).toBe(true);
    expect(shouldForbidCaching({ userId: null }, { noStoreWhenSignedIn: true })).toBe(false);
    expect(shouldForbidCaching({ userId: 'u1' }, { noStoreWhenSignedIn: false })).toBe(false);
  });
});
