// Shared timing and peer plumbing for the benchmarks. Benchmarks race a peer in the same run and
// print ratios; absolute times mean little across machines.
import { spawnSync } from 'child_process';
import * as os from 'os';
import * as path from 'path';
import { nativeInfo } from '../src/native';

export interface Timing {
  minMs: number;
  medianMs: number;
  runs: number;
}

const summarize = (ms: number[]): Timing => {
  const sorted = [...ms].sort((a, b) => a - b);
  return { minMs: sorted[0], medianMs: sorted[Math.floor(sorted.length / 2)], runs: sorted.length };
};

/** Times fn: `warmup` untimed calls, then runs until both minRuns and minTimeMs are reached. */
export function timeSync(fn: () => void, { warmup = 2, minRuns = 5, minTimeMs = 400 } = {}): Timing {
  for (let i = 0; i < warmup; i++) fn();
  const ms: number[] = [];
  const start = performance.now();
  while (ms.length < minRuns || performance.now() - start < minTimeMs) {
    const t = performance.now();
    fn();
    ms.push(performance.now() - t);
    if (ms.length >= 1000) break;
  }
  return summarize(ms);
}

export async function timeAsync(fn: () => Promise<unknown>, { warmup = 2, minRuns = 5, minTimeMs = 400 } = {}): Promise<Timing> {
  for (let i = 0; i < warmup; i++) await fn();
  const ms: number[] = [];
  const start = performance.now();
  while (ms.length < minRuns || performance.now() - start < minTimeMs) {
    const t = performance.now();
    await fn();
    ms.push(performance.now() - t);
    if (ms.length >= 1000) break;
  }
  return summarize(ms);
}

/** The Debian python that has python3-torch (another python3 may come first on PATH). */
const PYTHON = process.env.MEDGYM_BENCH_PYTHON ?? '/usr/bin/python3';
export const TORCH_HINT =
  'PyTorch peer unavailable: apt-get install python3-torch libopenblas0-pthread (runs with /usr/bin/python3)';

let torchChecked: boolean | undefined;
export function torchAvailable(): boolean {
  if (torchChecked === undefined) {
    torchChecked = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
  }
  return torchChecked;
}

/**
 * Runs bench/peers/<script> with one JSON argument and returns the JSON it prints last, or null
 * when PyTorch is not installed. The peer gets the same thread count as the native kernels.
 */
export function runPeer<T>(script: string, args: Record<string, unknown>): T | null {
  if (!torchAvailable()) return null;
  const threads = nativeInfo().threads;
  const res = spawnSync(PYTHON, [path.join(__dirname, 'peers', script), JSON.stringify({ threads, ...args })], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (res.status !== 0) throw new Error(`peer ${script} failed: ${res.stderr}`);
  const lines = res.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]) as T;
}

export function machineLine(): string {
  const info = nativeInfo();
  return `${os.cpus()[0]?.model ?? 'cpu'}, ${info.threads} threads, simd ${info.simd}, node ${process.version}, ${new Date().toISOString().slice(0, 10)}`;
}

export function printTable(title: string, header: string[], rows: (string | number)[][]): void {
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? fmt(c) : c)))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)));
  console.log(`\n## ${title}\n`);
  for (const [k, r] of cells.entries()) {
    console.log(`| ${r.map((c, i) => String(c ?? '').padEnd(widths[i])).join(' | ')} |`);
    if (k === 0) console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  }
}

export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  return a >= 100 ? x.toFixed(0) : a >= 10 ? x.toFixed(1) : a >= 1 ? x.toFixed(2) : x.toPrecision(3);
}
