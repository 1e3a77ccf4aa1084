// Runs native code in a child process with MEDGYM_NUM_THREADS set, so tests can compare results
// across thread counts without resizing the shared pool inside the test process.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import { addonCandidates } from '../../src/native';

/**
 * Evaluates `body` (JavaScript, with `addon` = the loaded addon and `fill(n, seed)` = deterministic
 * Float32Array data in scope; it must return an array of typed arrays) in a fresh node process with
 * `threads` kernel threads, and returns the sha256 of the returned arrays' bytes and the thread count.
 */
export function digestWithThreads(threads: number, body: string): { digest: string; threads: number } {
  const addonPath = addonCandidates().find((p) => fs.existsSync(p));
  if (!addonPath) throw new Error('addon not built');
  const script = `
    const addon = require(${JSON.stringify(addonPath)});
    const fill = (n, seed) => { const a = new Float32Array(n); let s = seed >>> 0;
      for (let i = 0; i < n; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; a[i] = (s >>> 8) / 8388608 - 1; }
      return a; };
    const arrays = (() => { ${body} })();
    const h = require('crypto').createHash('sha256');
    for (const a of arrays) h.update(Buffer.from(a.buffer, a.byteOffset, a.byteLength));
    process.stdout.write(JSON.stringify({ digest: h.digest('hex'), threads: addon.info().threads }));`;
  const res = spawnSync(process.execPath, ['-e', script], {
    encoding: 'utf8',
    env: { ...process.env, MEDGYM_NUM_THREADS: String(threads) },
  });
  if (res.status !== 0) throw new Error(`child failed (${res.status}): ${res.stderr}`);
  return JSON.parse(res.stdout) as { digest: string; threads: number };
}
