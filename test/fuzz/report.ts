/**
 * What a fuzz run saw, kept for one assertion at the end: counts by status and by input kind,
 * and for each failure class (what failed, with which status, on which route) its count, the
 * kinds of input that showed it, and the shortest such request: the one worth replaying first.
 */

/** A request as sent, raw enough to replay with curl. */
export interface SentRequest {
  /** The kind of hostile (or legitimate) input, for counts and reports. */
  kind: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
  /** When the body's parse is predictable: the user name and password the server reads from it. */
  login?: { username: unknown; password: unknown };
}

/** What came back: a response, or no response at all (a crash, a reset, a hang). */
export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  /** Set when no response arrived. */
  error?: string;
}

/**
 * The failure classes the fuzz test asserts none of: SPEC §3.6 and §3.13 (no 5xx, no 503 from a
 * store that answers, no crash), forged sign-ins, §3.12 (one user's listing or revocation
 * reaching another's sessions) and §2's `'both'` (a credential only on the channel it came in on).
 */
export type FailureClass = 'status >= 500' | 'status 503' | 'no answer' | 'forged sign-in' | 'cross-user effect' | 'credential on the wrong channel';

/** What the summary notes without failing on: behaviour a later fix may change for good reasons. */
export type NoteClass = 'documented 501' | 'signed-in session answered 401';

interface Entry {
  count: number;
  /** How many of each input kind showed it. */
  kinds: Map<string, number>;
  shortest: SentRequest;
  answer: Answer;
  detail: string;
}

const MAX_SHOWN = 160;

export class FuzzReport {
  readonly statuses = new Map<number, number>();
  readonly kinds = new Map<string, number>();
  private readonly failures = new Map<string, Entry & { failure: FailureClass }>();
  private readonly notes = new Map<string, Entry & { note: NoteClass }>();
  total = 0;

  constructor(
    readonly name: string,
    readonly seed: number,
  ) {}

  count(req: SentRequest, answer: Answer): void {
    this.total++;
    this.statuses.set(answer.status, (this.statuses.get(answer.status) ?? 0) + 1);
    this.kinds.set(req.kind, (this.kinds.get(req.kind) ?? 0) + 1);
  }

  /** Counts a failure; `variant` splits a class where the cause differs (whose credential, which channel). */
  fail(failure: FailureClass, req: SentRequest, answer: Answer, detail = '', variant = ''): void {
    this.keep(this.failures, `${failure}${variant && ` (${variant})`} | ${answer.status} ${routeOf(req)}`, { failure }, req, answer, detail);
  }

  note(note: NoteClass, req: SentRequest, answer: Answer, detail = ''): void {
    this.keep(this.notes, `${note} | ${answer.status} ${routeOf(req)}`, { note }, req, answer, detail);
  }

  /** Failures of one class, summed over routes and kinds. */
  failuresOf(failure: FailureClass): number {
    return [...this.failures.values()].filter((e) => e.failure === failure).reduce((sum, e) => sum + e.count, 0);
  }

  /** The run, readably: counts, then each failure class with its shortest reproducer. */
  format(elapsedMs: number): string {
    const statuses = [...this.statuses]
      .sort(([a], [b]) => a - b)
      .map(([s, n]) => `${s}: ${n}`)
      .join(', ');
    const lines = [
      `${this.name}: ${this.total} requests (${this.kinds.size} kinds of input) in ${(elapsedMs / 1000).toFixed(1)} s, seed ${this.seed} (replay with FUZZ_SEED=${this.seed})`,
      `  statuses: ${statuses}`,
    ];
    const section = (title: string, entries: Array<[string, Entry]>): void => {
      if (entries.length === 0) return;
      lines.push(`  ${title}:`);
      for (const [key, entry] of entries.sort(([, a], [, b]) => b.count - a.count)) {
        const kinds = [...entry.kinds].sort(([, a], [, b]) => b - a);
        const shownKinds =
          kinds
            .slice(0, 4)
            .map(([kind, n]) => `${kind} (${n})`)
            .join('; ') + (kinds.length > 4 ? `; +${kinds.length - 4} more kinds` : '');
        lines.push(`    [${entry.count}×] ${key}${entry.detail ? ` — ${entry.detail}` : ''}`);
        lines.push(`      inputs:   ${shownKinds}`);
        lines.push(`      shortest: ${describe(entry.shortest)}`);
        lines.push(`      answer:   ${entry.answer.error ?? `${entry.answer.status} ${show(JSON.stringify(entry.answer.body) ?? '')}`}`);
      }
    };
    section('FAILURES', [...this.failures]);
    section('notes (not failures)', [...this.notes]);
    return lines.join('\n');
  }

  private keep<T extends object>(map: Map<string, Entry & T>, key: string, extra: T, req: SentRequest, answer: Answer, detail: string): void {
    const entry = map.get(key);
    if (!entry) {
      map.set(key, { count: 1, kinds: new Map([[req.kind, 1]]), shortest: req, answer, detail, ...extra });
    } else {
      entry.count++;
      entry.kinds.set(req.kind, (entry.kinds.get(req.kind) ?? 0) + 1);
      if (size(req) < size(entry.shortest)) Object.assign(entry, { shortest: req, answer, detail });
    }
  }
}

/** `PUT /prefs/:key`: the route a path matched, so that many keys make one class. */
export function routeOf(req: Pick<SentRequest, 'method' | 'path'>): string {
  const path = req.path.split('?')[0];
  if (path.startsWith('/prefs/')) return `${req.method} /prefs/:key`;
  if (path.startsWith('/auth/sessions/')) return `${req.method} /auth/sessions/:id`;
  return `${req.method} ${show(path, 40)}`;
}

function size(req: SentRequest): number {
  return req.path.length + (req.body?.length ?? 0) + Object.values(req.headers).reduce((sum, v) => sum + v.length, 0);
}

/** A request as a line: method, path, headers and body, each cut to a readable length. */
export function describe(req: SentRequest, max = MAX_SHOWN): string {
  const headers = Object.entries(req.headers).map(([k, v]) => `${k}: ${show(JSON.stringify(v), max)}`);
  const body = req.body === undefined ? '' : ` body(${req.body.length} chars): ${show(JSON.stringify(req.body), max)}`;
  return `${req.method} ${show(JSON.stringify(req.path), max)} ${headers.join(' | ')}${body}`;
}

function show(text: string, max = MAX_SHOWN): string {
  return text.length <= max ? text : `${text.slice(0, max)}…(+${text.length - max} chars)`;
}

/** Any value as text, never throwing (`String()` throws on `{ toString: 'x' }` and null-prototype objects). */
export function asText(value: unknown): string {
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value) ?? typeof value;
  } catch {
    return typeof value;
  }
}
