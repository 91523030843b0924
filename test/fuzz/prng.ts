/**
 * A small seeded PRNG for the fuzz test: the same seed gives the same sequence of inputs, so a
 * failure found once can be replayed (`FUZZ_SEED=<seed>`). mulberry32: 32 bits of state, fast,
 * good enough to spread inputs; not for anything that needs to be unpredictable.
 */

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** The seed of this run: `FUZZ_SEED` (a number, or any text, hashed), else a fixed default. */
export function seedFromEnv(env: Record<string, string | undefined>, fallback: number): number {
  const given = env.FUZZ_SEED?.trim();
  if (!given) return fallback;
  return /^\d+$/.test(given) ? Number(given) >>> 0 : hash32(given);
}

/** FNV-1a: turns a text seed (or a seed plus a run's name) into 32 bits. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

export class Rng {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('Rng.pick: nothing to pick from');
    return items[Math.floor(this.next() * items.length)];
  }

  /** One of the entries, in proportion to its weight. */
  weighted<T>(entries: ReadonlyArray<readonly [weight: number, value: T]>): T {
    const total = entries.reduce((sum, [weight]) => sum + weight, 0);
    let roll = this.next() * total;
    for (const [weight, value] of entries) {
      roll -= weight;
      if (roll < 0) return value;
    }
    return entries[entries.length - 1][1];
  }

  /** `length` characters of the base64url alphabet: the shape of our ids and signatures. */
  base64url(length: number): string {
    let text = '';
    for (let i = 0; i < length; i++) text += BASE64URL[Math.floor(this.next() * 64)];
    return text;
  }

  /** A base64url character other than `not`. */
  otherBase64urlChar(not: string): string {
    const char = BASE64URL[Math.floor(this.next() * 63)];
    return char === not ? BASE64URL[63] : char;
  }

  /**
   * Characters a header value may carry (Node's client refuses others): printable ASCII and
   * latin-1 bytes 0x80–0xFF, which reach the server as raw bytes.
   */
  headerText(length: number): string {
    let text = '';
    for (let i = 0; i < length; i++) text += String.fromCharCode(this.chance(0.8) ? this.int(0x21, 0x7e) : this.int(0x80, 0xff));
    return text;
  }
}
