// Fuzz harness for file readers: byte-level mutations of a valid file, one case run under a time
// bound, and a tally of outcomes that fails on anything but "loads well-formed" or "a typed error
// that names the file".
import * as fs from 'fs';
import * as util from 'util';
import * as vm from 'vm';
import { Rng } from '../helpers/random';

/** A numeric field of the file a mutation may overwrite with a hostile value. */
export interface Field {
  off: number;
  type: 'u8' | 'u16le' | 'i16le' | 'u32le' | 'u32be' | 'i32le' | 'f32le' | 'u64le';
  /** Values worth trying beyond the generic hostile ones. */
  values?: number[];
}

const HOSTILE: Record<Field['type'], number[]> = {
  u8: [0, 1, 0x7f, 0x80, 0xff],
  u16le: [0, 1, 0x7fff, 0x8000, 0xffff],
  i16le: [0, 1, -1, 7, 8, 32767, -32768],
  u32le: [0, 1, 0x7fffffff, 0x80000000, 0xfffffff0, 0xffffffff],
  u32be: [0, 1, 0x7fffffff, 0x80000000, 0xffffffff],
  i32le: [0, 1, -1, 0x7fffffff, -0x80000000],
  f32le: [0, -1, 1e30, -1e30, NaN, Infinity, 0.5, 2 ** 31],
  u64le: [0, 1, 2 ** 32, 2 ** 53, 2 ** 63, 2 ** 64 - 1],
};

export function writeField(buf: Uint8Array, f: Field, v: number): void {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const size = { u8: 1, u16le: 2, i16le: 2, u32le: 4, u32be: 4, i32le: 4, f32le: 4, u64le: 8 }[f.type];
  if (f.off < 0 || f.off + size > b.length) return;
  switch (f.type) {
    case 'u8': b.writeUInt8(v & 0xff, f.off); break;
    case 'u16le': b.writeUInt16LE(v & 0xffff, f.off); break;
    case 'i16le': b.writeInt16LE(Math.max(-32768, Math.min(32767, v)), f.off); break;
    case 'u32le': b.writeUInt32LE(v >>> 0, f.off); break;
    case 'u32be': b.writeUInt32BE(v >>> 0, f.off); break;
    case 'i32le': b.writeInt32LE(v | 0, f.off); break;
    case 'f32le': b.writeFloatLE(v, f.off); break;
    case 'u64le': b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(Math.min(v, 2 ** 64 - 1))), f.off); break;
  }
}

export const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(0, xs.length)];

/** Overwrites one field with a hostile value (huge, negative, zero, NaN…). */
export function hostileField(rng: Rng, buf: Uint8Array, fields: Field[]): Uint8Array {
  const out = Uint8Array.from(buf);
  const f = pick(rng, fields);
  writeField(out, f, pick(rng, [...HOSTILE[f.type], ...(f.values ?? [])]));
  return out;
}

/** One generic byte-level mutation: truncate, flip, insert/delete/duplicate ranges, junk. */
export function mutateBytes(rng: Rng, src: Uint8Array): Uint8Array {
  const n = src.length;
  const at = (): number => rng.int(0, n + 1);
  switch (rng.int(0, 8)) {
    case 0: // truncate
      return src.slice(0, rng.int(0, n));
    case 1: {
      // flip a few bytes
      const out = Uint8Array.from(src);
      for (let k = rng.int(1, 9); k > 0 && n > 0; k--) out[rng.int(0, n)] ^= rng.int(1, 256);
      return out;
    }
    case 2: {
      // extreme bytes
      const out = Uint8Array.from(src);
      for (let k = rng.int(1, 5); k > 0 && n > 0; k--) out[rng.int(0, n)] = pick(rng, [0, 0xff, 0x7f, 0x80]);
      return out;
    }
    case 3: {
      // insert junk
      const p = at();
      const junk = Uint8Array.from({ length: rng.int(1, 65) }, () => rng.int(0, 256));
      return concat(src.subarray(0, p), junk, src.subarray(p));
    }
    case 4: {
      // delete a range
      const p = at();
      return concat(src.subarray(0, p), src.subarray(Math.min(n, p + rng.int(1, 64))));
    }
    case 5: {
      // duplicate a range
      const p = at();
      const q = Math.min(n, p + rng.int(1, 128));
      return concat(src.subarray(0, q), src.subarray(p, q), src.subarray(q));
    }
    case 6: // append junk
      return concat(src, Uint8Array.from({ length: rng.int(1, 4097) }, () => rng.int(0, 256)));
    default: // empty or a single byte
      return src.slice(0, rng.int(0, 2));
  }
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Offsets of every occurrence of `pattern` in `buf`. */
export function findAll(buf: Uint8Array, pattern: number[]): number[] {
  const out: number[] = [];
  outer: for (let i = 0; i + pattern.length <= buf.length; i++) {
    for (let k = 0; k < pattern.length; k++) if (buf[i + k] !== pattern[k]) continue outer;
    out.push(i);
  }
  return out;
}

// ----- running one case -------------------------------------------------------------------------

export interface CaseSpec {
  /** Short description of the mutation (for failure reports). */
  what: string;
  /** Size of the mutated file(s) in bytes (bounds the memory a case may use). */
  bytes: number;
  /** Strings any error message must contain one of (the file's path or base name). */
  names: string[];
}

/** Names of the error classes a bad file may produce. */
export type Allowed = readonly string[];

const TRACE = process.env.MEDGYM_FUZZ_TRACE === '1';
const SYNC_LIMIT_MS = 5000;
const ASYNC_LIMIT_MS = 10000;
/** Memory a case may use beyond the bytes of its file(s) × this factor. */
const MEM_SLACK = 32 << 20;
const MEM_FACTOR = 64;

const isError = (e: unknown): e is Error => util.types.isNativeError(e) || e instanceof Error;

// One context and one compiled call, reused: a fresh context per case costs more than most cases.
const callCtx = vm.createContext({ f: undefined as unknown });
const callScript = new vm.Script('f()');

export class Tally {
  readonly counts = new Map<string, number>();
  readonly violations: string[] = [];
  readonly shapes = new Map<string, number>();
  cases = 0;
  maxMs = 0;
  maxMemGrowth = 0;
  private readonly rss0 = process.resourceUsage().maxRSS;

  constructor(
    readonly format: string,
    readonly allowed: Allowed,
  ) {}

  /**
   * Runs `fn` (sync or async) under a time bound — the synchronous part under a vm timeout, which
   * interrupts even an infinite loop — and classifies the outcome. `check` validates a success.
   */
  async run<T>(spec: CaseSpec, fn: () => T | Promise<T>, check: (v: T) => string | undefined): Promise<void> {
    this.cases++;
    if (TRACE) fs.writeSync(2, `${this.format} #${this.cases}: ${spec.what.slice(0, 200)}\n`);
    const mem0 = process.memoryUsage().arrayBuffers;
    const t0 = performance.now();
    let outcome: { ok: true; value: T } | { ok: false; err: unknown };
    try {
      outcome = { ok: true, value: await within(fn, SYNC_LIMIT_MS, ASYNC_LIMIT_MS) };
    } catch (err) {
      outcome = { ok: false, err };
    }
    const ms = performance.now() - t0;
    const grown = process.memoryUsage().arrayBuffers - mem0;
    this.maxMs = Math.max(this.maxMs, ms);
    this.maxMemGrowth = Math.max(this.maxMemGrowth, grown);
    const bad = (why: string): void => {
      this.violations.push(`${why} [${spec.what}]`);
    };
    if (grown > MEM_SLACK + MEM_FACTOR * spec.bytes) bad(`array buffers grew by ${(grown / 2 ** 20).toFixed(0)} MiB for a ${spec.bytes}-byte input`);
    if (outcome.ok) {
      const why = check(outcome.value);
      if (why) bad(`loaded but malformed: ${why}`);
      this.count('ok');
      return;
    }
    const err = outcome.err;
    if (!isError(err)) {
      bad(`threw a non-Error: ${String(err)}`);
      this.count('non-Error');
      return;
    }
    const code = (err as { code?: string }).code;
    if (err instanceof HangError || code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') {
      bad(`hung: ${err.message}`);
      this.count('hang');
      return;
    }
    this.count(err.name);
    this.shapes.set(`${err.name}: ${shape(err.message, spec.names)}`, (this.shapes.get(`${err.name}: ${shape(err.message, spec.names)}`) ?? 0) + 1);
    if (!this.allowed.includes(err.name)) bad(`untyped ${err.name}: ${err.message}\n${err.stack?.split('\n').slice(1, 4).join('\n')}`);
    else if (!spec.names.some((n) => err.message.includes(n))) bad(`message does not name the file (${spec.names.join(' or ')}): ${err.message}`);
    else if (ms > 2000) bad(`took ${ms.toFixed(0)} ms to reject`);
  }

  private count(k: string): void {
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
  }

  get ok(): number {
    return this.counts.get('ok') ?? 0;
  }
  get rejected(): number {
    return this.cases - this.ok;
  }

  summary(): string {
    const parts = [...this.counts.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`);
    const rss = (process.resourceUsage().maxRSS - this.rss0) / 1024;
    return `fuzz ${this.format}: ${this.cases} cases: ${parts.join(', ')}; slowest ${this.maxMs.toFixed(0)} ms, max array-buffer growth ${(this.maxMemGrowth / 2 ** 20).toFixed(1)} MiB, peak RSS +${rss.toFixed(0)} MiB`;
  }

  /** Most common error message shapes (file names, numbers and quoted text abstracted). */
  topShapes(k = 12): string {
    return [...this.shapes.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, k)
      .map(([s, v]) => `  ${v}× ${s}`)
      .join('\n');
  }

  /** Fails with the first violations, if any, and unless the fuzzer reached both outcomes. */
  assert(minOk: number, minRejected: number): void {
    if (this.violations.length) throw new Error(`${this.format}: ${this.violations.length} violations, first ones:\n${this.violations.slice(0, 8).join('\n')}`);
    if (this.ok < minOk) throw new Error(`${this.format}: only ${this.ok} mutated files loaded (want >= ${minOk}); the fuzzer is not reaching the success path`);
    if (this.rejected < minRejected) throw new Error(`${this.format}: only ${this.rejected} mutated files were rejected (want >= ${minRejected})`);
  }
}

export class HangError extends Error {}

/**
 * Calls `fn` and awaits its result, failing with a timeout error if its synchronous part runs past
 * `syncMs` (a vm timeout interrupts even an infinite loop) or its promise takes past `asyncMs`.
 */
export async function within<T>(fn: () => T | Promise<T>, syncMs: number, asyncMs = syncMs): Promise<T> {
  callCtx.f = fn;
  let r: T | Promise<T>;
  try {
    r = callScript.runInContext(callCtx, { timeout: syncMs }) as T | Promise<T>;
  } finally {
    callCtx.f = undefined;
  }
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    Promise.resolve(r),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new HangError(`no result after ${asyncMs} ms`)), asyncMs);
    }),
  ]).finally(() => clearTimeout(timer));
}

function shape(msg: string, names: string[]): string {
  let s = msg;
  for (const n of [...names].sort((a, b) => b.length - a.length)) s = s.split(n).join('<file>');
  return s
    .replace(/\/[^\s:'"()]*\//g, '<dir>/')
    .replace(/"[^"]*"|'[^']*'/g, '"…"')
    .replace(/-?\d+(\.\d+)?(e[+-]?\d+)?/gi, 'N')
    .slice(0, 140);
}

// ----- checking successes -------------------------------------------------------------------------

const tag = (x: unknown): string => Object.prototype.toString.call(x);

/** undefined when `img` is a well-formed RawImage, else what is wrong. */
export function checkImage(img: { data: ArrayLike<number>; width: number; height: number; channels: number; bitDepth: number; defaultWindow?: { center: number; width: number } }): string | undefined {
  if (!Number.isInteger(img.width) || !Number.isInteger(img.height) || img.width < 1 || img.height < 1) return `size ${img.width}x${img.height}`;
  if (img.channels !== 1 && img.channels !== 3) return `channels ${img.channels}`;
  if (img.bitDepth === 8 && tag(img.data) !== '[object Uint8Array]') return `8-bit data is ${tag(img.data)}`;
  if (img.bitDepth === 16 && tag(img.data) !== '[object Uint16Array]') return `16-bit data is ${tag(img.data)}`;
  if (img.bitDepth !== 8 && img.bitDepth !== 16) return `bitDepth ${img.bitDepth}`;
  if (img.data.length !== img.width * img.height * img.channels) return `${img.data.length} samples for ${img.width}x${img.height}x${img.channels}`;
  if (img.defaultWindow && !(Number.isFinite(img.defaultWindow.center) && img.defaultWindow.width > 0 && Number.isFinite(img.defaultWindow.width))) return `window ${JSON.stringify(img.defaultWindow)}`;
  return undefined;
}

export interface ItemLike {
  id: string;
  image: Parameters<typeof checkImage>[0];
  question: string;
  options: string[];
  answer: number | string;
  modality: string;
  questionType: string;
  box?: number[];
}

export function checkItem(it: ItemLike): string | undefined {
  if (typeof it.id !== 'string' || it.id === '') return `id ${JSON.stringify(it.id)}`;
  if (typeof it.question !== 'string') return `question ${typeof it.question}`;
  if (!Array.isArray(it.options) || !it.options.every((o) => typeof o === 'string')) return 'options are not strings';
  if (typeof it.answer === 'number') {
    if (!Number.isInteger(it.answer) || it.answer < 0 || it.answer >= it.options.length) return `answer ${it.answer} of ${it.options.length} options`;
  } else if (typeof it.answer !== 'string') return `answer ${typeof it.answer}`;
  if (typeof it.modality !== 'string' || typeof it.questionType !== 'string') return 'modality/questionType';
  if (it.box && !(it.box.length === 4 && it.box.every(Number.isFinite))) return `box ${JSON.stringify(it.box)}`;
  return checkImage(it.image);
}
