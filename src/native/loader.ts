// Finds and loads the compiled addon, lazily: importing medgym never loads it, the first native call
// does. Candidates, in order: MEDGYM_BINARY (alias MEDGYM_ADDON), a local build (build/Release,
// build/Debug: `npx medgym build` or the repository's own `npm ci`), then the CPU prebuilt shipped in
// the package (prebuilds/<platform>/medgym.node). A binary with CUDA compiled in is first loaded in a
// child process (the CUDA runtime starts there; once per boot, remembered in the temp folder): if
// the child fails, the candidate is skipped with a warning, so a broken driver never takes this
// process down. When nothing loads, one line says the platform, what was tried and the fix.
import { spawnSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { NativeAddon } from './types';

const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');

/** The platform tag of the prebuilt this process can use, e.g. "linux-x64-glibc". */
export function platformTag(): string {
  let libc = '';
  if (process.platform === 'linux') {
    const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
    libc = header?.glibcVersionRuntime ? '-glibc' : '-musl';
  }
  return `${process.platform}-${process.arch}${libc}`;
}

/** Where the shipped CPU prebuilt for this platform would be. */
export function prebuiltPath(): string {
  return path.join(PACKAGE_ROOT, 'prebuilds', platformTag(), 'medgym.node');
}

interface Candidate {
  file: string;
  /** Where the path came from, for the error line. */
  from: string;
}

function candidates(): Candidate[] {
  const out: Candidate[] = [];
  for (const name of ['MEDGYM_BINARY', 'MEDGYM_ADDON']) {
    const v = process.env[name];
    if (v) out.push({ file: path.resolve(v), from: name });
  }
  for (const p of ['build/Release/medgym.node', 'build/Debug/medgym.node']) out.push({ file: path.join(PACKAGE_ROOT, p), from: 'build' });
  out.push({ file: prebuiltPath(), from: 'prebuilt' });
  return out;
}

/** Paths tried in order: MEDGYM_BINARY / MEDGYM_ADDON when set, build/Release, build/Debug, the prebuilt. */
export function addonCandidates(): string[] {
  return candidates().map((c) => c.file);
}

let cached: NativeAddon | undefined;
let cachedPath: string | undefined;

/** The file the addon was loaded from, or undefined before the first native call. */
export function nativeAddonPath(): string | undefined {
  return cachedPath;
}

export class NativeAddonNotFoundError extends Error {
  /** Each candidate and why it was not used. */
  readonly tried: string[];
  constructor(tried: string[], cause?: unknown) {
    const why = cause === undefined ? '' : ` (${firstLine(cause)})`;
    super(
      `medgym: no native addon loads on ${platformTag()} (node ${process.version}, N-API 8); tried ${tried.join(', ')}${why}; ` +
        'fix: run `npx medgym build` (needs a C++17 compiler and CMake; in a clone of the repository `npm run build:native`), ' +
        'or set MEDGYM_BINARY to a medgym.node',
    );
    this.name = 'NativeAddonNotFoundError';
    this.tried = tried;
  }
}

function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0]!.trim();
}

interface BinaryFacts {
  /** The CUDA runtime is linked in. */
  cuda: boolean;
  /** A child process loaded it since this boot (a CUDA build is probed once per boot). */
  probeOk?: boolean;
}

/** Facts about a binary, cached in the temp folder by path, size, mtime and boot. */
function factsCache(file: string, stat: fs.Stats): { get(): BinaryFacts | undefined; set(f: BinaryFacts): void } {
  let boot = '';
  try {
    boot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    // not Linux: probe every time
    boot = String(process.pid);
  }
  const key = crypto.createHash('sha1').update(`${file}:${stat.size}:${stat.mtimeMs}:${boot}`).digest('hex').slice(0, 16);
  const cacheFile = path.join(os.tmpdir(), `medgym-addon-${key}.json`);
  return {
    get() {
      try {
        return JSON.parse(fs.readFileSync(cacheFile, 'utf8')) as BinaryFacts;
      } catch {
        return undefined;
      }
    },
    set(f) {
      try {
        fs.writeFileSync(cacheFile, JSON.stringify(f));
      } catch {
        // a read-only temp folder only costs the search and the probe next time
      }
    },
  };
}

/**
 * Loads a CUDA build in a child process first (info() starts the CUDA runtime); undefined when it
 * works, else the reason. MEDGYM_CUDA_PROBE=0 skips it.
 */
function probeInChild(file: string): string | undefined {
  const res = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(file)}).info()`], {
    encoding: 'utf8',
    timeout: 20000,
    env: { ...process.env, MEDGYM_CUDA_PROBE: '0' },
  });
  if (res.status === 0) return undefined;
  if (res.error) return res.error.message;
  return res.signal ? `the CUDA probe died with ${res.signal}` : firstLine(res.stderr || `exit ${res.status}`);
}

/** Why a CUDA build must not be loaded here (its child probe failed), or undefined. */
function cudaProbeFailure(file: string, stat: fs.Stats): string | undefined {
  const cache = factsCache(file, stat);
  let facts = cache.get();
  if (!facts) {
    facts = { cuda: fs.readFileSync(file).includes('cudaGetDeviceCount') };
    cache.set(facts);
  }
  if (!facts.cuda || facts.probeOk || process.env.MEDGYM_CUDA_PROBE === '0') return undefined;
  const failed = probeInChild(file);
  if (!failed) cache.set({ ...facts, probeOk: true });
  return failed;
}

/** Loads the addon once; throws NativeAddonNotFoundError (one line) when no candidate loads. */
export function loadNative(): NativeAddon {
  if (cached) return cached;
  const tried: string[] = [];
  for (const { file, from } of candidates()) {
    const label = from === 'MEDGYM_BINARY' || from === 'MEDGYM_ADDON' ? `${from}=${file}` : file;
    let stat: fs.Stats;
    try {
      stat = fs.statSync(file);
    } catch {
      tried.push(`${label} (not found)`);
      continue;
    }
    if (from !== 'prebuilt') {
      const failed = cudaProbeFailure(file, stat);
      if (failed) {
        tried.push(`${label} (CUDA build; a child process could not load it: ${failed})`);
        process.emitWarning(`medgym: skipping the CUDA build ${file}: ${failed}`);
        continue;
      }
    }
    try {
      cached = require(file) as NativeAddon;
      cachedPath = file;
      return cached;
    } catch (err) {
      tried.push(`${label} (${firstLine(err)})`);
    }
  }
  throw new NativeAddonNotFoundError(tried);
}
