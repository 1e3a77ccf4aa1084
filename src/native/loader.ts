// Finds and loads the compiled addon. On failure the error says what to install and run.
import * as fs from 'fs';
import * as path from 'path';
import type { NativeAddon } from './types';

const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');

/** Paths tried in order; MEDGYM_ADDON (a path to a .node file) comes first when set. */
export function addonCandidates(): string[] {
  const fromEnv = process.env.MEDGYM_ADDON;
  const builtin = ['build/Release/medgym.node', 'build/Debug/medgym.node'].map((p) => path.join(PACKAGE_ROOT, p));
  return fromEnv ? [path.resolve(fromEnv), ...builtin] : builtin;
}

let cached: NativeAddon | undefined;

export class NativeAddonNotFoundError extends Error {
  constructor(tried: string[], cause: unknown) {
    super(
      'medgym: the native addon could not be loaded.\n' +
        `  Tried: ${tried.join(', ')}\n` +
        `  Last error: ${cause instanceof Error ? cause.message : String(cause)}\n` +
        '  Build it with a C++17 compiler and CMake (Debian: apt-get install g++ cmake), then run\n' +
        `  \`npm run build:native\` in ${PACKAGE_ROOT} (or \`npx node-gyp rebuild\` there without CMake).`,
    );
    this.name = 'NativeAddonNotFoundError';
  }
}

/** Loads the addon once; throws NativeAddonNotFoundError with build instructions if it is missing. */
export function loadNative(): NativeAddon {
  if (cached) return cached;
  const tried = addonCandidates();
  let lastError: unknown = new Error('no candidate file exists');
  for (const file of tried) {
    if (!fs.existsSync(file)) continue;
    try {
      cached = require(file) as NativeAddon;
      return cached;
    } catch (err) {
      lastError = err;
    }
  }
  throw new NativeAddonNotFoundError(tried, lastError);
}
