// What every loader shares: one error type that names the file (and line), path resolution that
// refuses anything outside the dataset root, and the handling of bad annotation rows (thrown, or
// skipped and reported, see OpenOptions).
import * as fs from 'fs';
import * as path from 'path';
import type { Split, VqaItem } from '../types';

export class LoaderError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LoaderError';
  }
}

/**
 * Throws unless `file` is a regular file. Reading a FIFO or a device blocks (or never ends) inside a
 * synchronous read, so anything a dataset names is checked before it is opened.
 */
export function requireFile(file: string, what = 'file'): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    throw new LoaderError(`cannot read ${what} ${file}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  if (!st.isFile()) throw new LoaderError(`${what} ${file} is not a regular file`);
}

/** The bytes of a regular file, or a LoaderError naming it. @internal */
export function readBytes(file: string, what = 'file'): Buffer {
  requireFile(file, what);
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new LoaderError(`cannot read ${what} ${file}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/**
 * Loads one item lazily; any failure (a missing or corrupt image…) becomes a LoaderError that also
 * names the annotation row the item came from, e.g. "data.jsonl:7: unreadable image …".
 */
export async function loadRow<T>(where: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    throw new LoaderError(`${where}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/** Absolute, real path of `rel` inside `root`; throws LoaderError on traversal or a missing file. */
export function resolveInside(root: string, rel: string, what = 'file'): string {
  return resolveInsideReal(fs.realpathSync(root), rel, what);
}

/** resolveInside with the root's real path already known (one stat and one realpath per call). */
function resolveInsideReal(realRoot: string, rel: string, what: string): string {
  if (typeof rel !== 'string' || rel.length === 0) throw new LoaderError(`${what}: expected a relative path but received ${JSON.stringify(rel)}`);
  if (rel.includes('\0')) throw new LoaderError(`${what}: path contains a NUL byte`);
  const p = path.resolve(realRoot, rel);
  const inside = (q: string): boolean => q === realRoot || q.startsWith(realRoot + path.sep);
  if (!inside(p)) throw new LoaderError(`${what} ${JSON.stringify(rel)} is outside the dataset root ${realRoot}`);
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch {
    throw new LoaderError(`${what} ${JSON.stringify(rel)} not found (looked for ${p})`);
  }
  // A symlink inside the root may still point out of it.
  const real = fs.realpathSync.native(p);
  if (!inside(real)) throw new LoaderError(`${what} ${JSON.stringify(rel)} links outside the dataset root (${real})`);
  // A directory, FIFO or device is no image (and a FIFO would block the read forever).
  if (!st.isFile()) throw new LoaderError(`${what} ${JSON.stringify(rel)} is not a regular file (${real})`);
  return real;
}

/** The text of an annotation file; `onFile` sees the exact bytes read (for a content hash). */
export function readText(file: string, onFile?: (file: string, bytes: Uint8Array) => void): string {
  requireFile(file);
  let text: string;
  try {
    const bytes = fs.readFileSync(file);
    onFile?.(file, bytes);
    text = bytes.toString('utf8');
  } catch (err) {
    throw new LoaderError(`cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  // A UTF-8 byte-order mark (common in files saved on Windows) is not part of the first line or key.
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

export function readJson(file: string, onFile?: (file: string, bytes: Uint8Array) => void): unknown {
  const text = readText(file, onFile);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new LoaderError(`${file}: invalid JSON (${err instanceof Error ? err.message : String(err)})`, { cause: err });
  }
}

export function requireDir(root: string): string {
  if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) throw new LoaderError(`dataset root ${root} is not a directory`);
  return root;
}

/** Answer given as an index, a letter ("B") or an option's text → option index, or undefined. */
export function answerIndex(answer: unknown, options: string[]): number | undefined {
  if (typeof answer === 'number' && Number.isInteger(answer) && answer >= 0 && answer < options.length) return answer;
  if (typeof answer !== 'string') return undefined;
  const a = answer.trim();
  const byText = options.findIndex((o) => o.trim().toLowerCase() === a.toLowerCase());
  if (byText >= 0) return byText;
  const m = /^\(?([A-Za-z])\)?[.:)]?$/.exec(a);
  if (m) {
    const k = m[1].toUpperCase().charCodeAt(0) - 65;
    if (k < options.length) return k;
  }
  return undefined;
}

// ----- bad rows, image checks at open time, and what is known of an item before its image loads ---

/** Options every annotation loader takes (all optional: the defaults throw on the first bad row). */
export interface OpenOptions {
  /**
   * Called for a bad row (malformed JSON/CSV, wrong field types, answer not among the options, and
   * with checkImages a missing or out-of-root image) with where it is ("file:line" or "file[i]")
   * and why; the row is then left out. Without it the first bad row throws a LoaderError naming it.
   */
  onSkip?: (where: string, message: string) => void;
  /** Stat every row's image at open time (no decoding): a missing image is a bad row then, not a failure mid-run. */
  checkImages?: boolean;
  /** Ids of the rows kept so far (id → where): a row repeating one is bad. Shared by the files of one dataset. */
  ids?: Map<string, string>;
  /** Sees each annotation file's bytes as they are read (in reading order). */
  onFile?: (file: string, bytes: Uint8Array) => void;
  /** NIfTI: axis and slice for volumes whose row does not say. */
  axis?: 0 | 1 | 2;
  /** NIfTI: slice index along `axis` for volumes whose row does not say (default the middle one). */
  slice?: number;
}

/** What is known of an item from its annotation alone (see ItemInfo in ../open.ts). */
export interface RowInfo {
  /** The dataset's own split of the row, when it has one. */
  split?: Split;
  /** The row gives a finding box. */
  hasBox: boolean;
  /** Imaging modality (lower case, e.g. 'ct', 'xray'; 'unknown' when the source does not say). */
  modality: string;
  /** Question type as the source gives it. */
  questionType: string;
  /** Open question (no options): graded by normalized exact match. */
  open: boolean;
  /** Closed yes/no question. */
  yesNo: boolean;
}

/** The parsed rows of one source: records (index i ↔ where[i] ↔ info[i]) and their lazy loader. */
export interface Rows<R extends { id: string }> {
  /** The source's name (e.g. the dataset). */
  name: string;
  /** The parsed annotation records, in file order. */
  records: R[];
  /** The annotation entry of each record, "file:line" or "file[i]". */
  where: string[];
  /** What each record says of its item before its image loads. */
  info: RowInfo[];
  load(r: R, index: number): Promise<VqaItem>;
}

/** `message` without a leading "where: " (the reason alone). */
export function reasonOf(message: string, where: string): string {
  return message.startsWith(`${where}: `) ? message.slice(where.length + 2) : message;
}

/**
 * Runs `parse` for one annotation row. A LoaderError is the row's fault: without onSkip it is
 * thrown (prefixed with `where` when it does not already name it); with onSkip it is reported and
 * undefined returned. Any other error is a bug and always thrown.
 */
export function guardRow<T>(opts: OpenOptions, where: string, parse: () => T): T | undefined {
  try {
    return parse();
  } catch (err) {
    if (!(err instanceof LoaderError)) throw err;
    if (!opts.onSkip) throw err.message.startsWith(`${where}: `) ? err : new LoaderError(`${where}: ${err.message}`, { cause: err });
    opts.onSkip(where, reasonOf(err.message, where));
    return undefined;
  }
}

/**
 * The checks a parsed row gets before it is kept: its id not taken by an earlier row (opts.ids,
 * shared across the files of one dataset), and with opts.checkImages its image (relative to root) a
 * regular file inside the root, found by stat alone (nothing is decoded). Throws a LoaderError
 * (to be named by guardRow); on success the id is taken.
 */
export function checkRow(opts: OpenOptions, where: string, root: string, id: string, image: string): void {
  const seen = opts.ids?.get(id);
  if (seen !== undefined) throw new LoaderError(`${where}: duplicate id ${JSON.stringify(id)} (first at ${seen})`);
  if (opts.checkImages) {
    let roots = realRoots.get(opts);
    if (!roots) realRoots.set(opts, (roots = new Map()));
    let real = roots.get(root);
    if (real === undefined) roots.set(root, (real = fs.realpathSync(root)));
    resolveInsideReal(real, image, 'image');
  }
  opts.ids?.set(id, where);
}

/** The real path of each dataset root, resolved once per open (per options object). */
const realRoots = new WeakMap<OpenOptions, Map<string, string>>();

const YES_NO = new Set(['yes', 'no']);
const norm = (s: string): string => s.trim().toLowerCase().replace(/[.!]+$/, '');

/** Info of a row: open (no options), yes/no (options exactly yes and no, or an open yes/no answer). */
export function rowInfo(r: { options: string[]; answer: number | string; modality: string; questionType: string; hasBox?: boolean; split?: Split }): RowInfo {
  const open = r.options.length === 0;
  const yesNo = open
    ? typeof r.answer === 'string' && YES_NO.has(norm(r.answer))
    : r.options.length === 2 && YES_NO.has(norm(r.options[0])) && YES_NO.has(norm(r.options[1])) && norm(r.options[0]) !== norm(r.options[1]);
  return { split: r.split, hasBox: Boolean(r.hasBox), modality: r.modality, questionType: r.questionType, open, yesNo };
}

/** A split name from a data file ("train", "val", "validate", "validation", "test"; any case) or a LoaderError. */
export function splitName(v: unknown, what = 'split'): Split | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const s = typeof v === 'string' ? v.trim().toLowerCase() : undefined;
  if (s === 'train' || s === 'test') return s;
  if (s === 'val' || s === 'validate' || s === 'validation') return 'val';
  throw new LoaderError(`${what} must be "train", "val", "validate" or "test" but is ${JSON.stringify(v)}`);
}
