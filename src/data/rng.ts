// Counter-based randomness: a stream is a pure function of (seed, ...counters), so item i of a
// generator or episode k of an env is the same whatever order or batch it is drawn in (SPEC §7).

/** murmur3's 32-bit finalizer: a bijective avalanche mix. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hash of a list of integers (each taken mod 2^32; doubles above that fold their high bits in). */
export function hashInts(...xs: number[]): number {
  let h = 0x9e3779b9;
  for (const x of xs) {
    const lo = x >>> 0;
    const hi = Math.floor(x / 4294967296) >>> 0;
    h = fmix32(h ^ lo) + 0x632be5ab;
    if (hi) h = fmix32(h ^ hi) + 0x85157af5;
  }
  return fmix32(h);
}

/** Hash of a string (FNV-1a then mixed), for ids and split assignment. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return fmix32(h >>> 0);
}

/** A small fast generator (mulberry32) started from hashInts(counters). */
export class Stream {
  private state: number;
  constructor(...counters: number[]) {
    this.state = hashInts(...counters);
  }
  u32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    return this.u32() / 4294967296;
  }
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }
  int(lo: number, hiExclusive: number): number {
    return lo + Math.floor(this.next() * (hiExclusive - lo));
  }
  normal(): number {
    const u = Math.max(this.next(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(0, xs.length)];
  }
  shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = this.int(0, i + 1);
      [xs[i], xs[j]] = [xs[j], xs[i]];
    }
    return xs;
  }
}
