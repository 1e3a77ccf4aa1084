// What every loader shares: one error type that names the file (and line), and path resolution
// that refuses anything outside the dataset root.
import * as fs from 'fs';
import * as path from 'path';

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

/** The bytes of a regular file, or a LoaderError naming it. */
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
  if (typeof rel !== 'string' || rel.length === 0) throw new LoaderError(`${what}: expected a relative path but received ${JSON.stringify(rel)}`);
  if (rel.includes('\0')) throw new LoaderError(`${what}: path contains a NUL byte`);
  const realRoot = fs.realpathSync(root);
  const p = path.resolve(realRoot, rel);
  const inside = (q: string): boolean => q === realRoot || q.startsWith(realRoot + path.sep);
  if (!inside(p)) throw new LoaderError(`${what} ${JSON.stringify(rel)} is outside the dataset root ${realRoot}`);
  if (!fs.existsSync(p)) throw new LoaderError(`${what} ${JSON.stringify(rel)} not found (looked for ${p})`);
  // A symlink inside the root may still point out of it.
  const real = fs.realpathSync(p);
  if (!inside(real)) throw new LoaderError(`${what} ${JSON.stringify(rel)} links outside the dataset root (${real})`);
  // A directory, FIFO or device is no image (and a FIFO would block the read forever).
  if (!fs.statSync(real).isFile()) throw new LoaderError(`${what} ${JSON.stringify(rel)} is not a regular file (${real})`);
  return real;
}

export function readText(file: string): string {
  requireFile(file);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new LoaderError(`cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  // A UTF-8 byte-order mark (common in files saved on Windows) is not part of the first line or key.
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

export function readJson(file: string): unknown {
  const text = readText(file);
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
