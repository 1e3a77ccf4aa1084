// `medgym bench-kernels [--json]`: a quick benchmark of the main CPU kernels on fixed shapes (a few
// seconds in all), as a harness embedding medgym would run it. Each row: the kernel, its shape, the
// median time and the rate that judges it (GFLOP/s for the compute-bound ones, GB/s for the
// memory-bound ones). The full benchmarks with their peers are `npm run bench` in the repository.
import * as os from 'os';
import { attention, fusedLinearLogprob, gemm, grpoLoss, logprob, nativeInfo, setNumThreads } from '../native';
import { nativeAddonPath } from '../native/loader';

export interface KernelBenchRow {
  /** Kernel name, as exported by `medgym/kernels`. */
  name: string;
  /** The problem size, e.g. "M=256 N=256 K=256". */
  shape: string;
  /** Median milliseconds per call. */
  ms: number;
  /** Calls timed. */
  runs: number;
  /** Useful floating-point work per second (compute-bound kernels), else null. */
  gflops: number | null;
  /** Bytes of the inputs and outputs moved per second (memory-bound kernels), else null. */
  gbps: number | null;
}

export interface KernelBenchReport {
  medgym: string;
  addon: string | undefined;
  simd: string;
  threads: number;
  cpu: string;
  bench: KernelBenchRow[];
}

export interface BenchKernelsFlags {
  json?: boolean;
  threads?: string;
  /** Minimum milliseconds per kernel. */
  minTime?: string;
}

/** Deterministic data in [-1, 1) (an LCG), so every run times the same numbers. */
function fill(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s >>> 8) / 8388608 - 1;
  }
  return a;
}

function time(fn: () => void, minMs: number): { ms: number; runs: number } {
  fn();
  fn();
  const ms: number[] = [];
  const start = performance.now();
  while (ms.length < 5 || (performance.now() - start < minMs && ms.length < 1000)) {
    const t = performance.now();
    fn();
    ms.push(performance.now() - t);
  }
  ms.sort((a, b) => a - b);
  return { ms: ms[Math.floor(ms.length / 2)]!, runs: ms.length };
}

/** Runs the kernel benchmark; `minMs` is the least time spent timing each kernel. */
export function benchKernels(minMs = 300): KernelBenchReport {
  const rows: KernelBenchRow[] = [];
  const add = (name: string, shape: string, fn: () => void, flops: number | null, bytes: number | null): void => {
    const t = time(fn, minMs);
    const per = (x: number | null) => (x === null ? null : Number((x / (t.ms * 1e6)).toFixed(2)));
    rows.push({ name, shape, ms: Number(t.ms.toFixed(4)), runs: t.runs, gflops: per(flops), gbps: per(bytes) });
  };

  {
    const M = 256, N = 256, K = 256;
    const A = fill(M * K, 1), B = fill(N * K, 2), C = new Float32Array(M * N);
    add('gemm', `M=${M} N=${N} K=${K} transB`, () => gemm({ A, B, C, M, N, K, transB: true }), 2 * M * N * K, null);
  }
  {
    const B = 4, T = 128, C = 256, H = 4;
    const qkv = fill(B * T * 3 * C, 3), out = new Float32Array(B * T * C), lse = new Float32Array(B * H * T);
    // Causal: QK^T and PV each 2·T²·C/2 flops per sequence.
    add('attention', `B=${B} T=${T} C=${C} H=${H} causal`, () => attention({ qkv, out, lse, B, T, C, H }), 2 * B * T * T * C, null);
  }
  {
    const N = 512, V = 8192;
    const logits = fill(N * V, 4), targets = Int32Array.from({ length: N }, (_, i) => (i * 7919) % V);
    add('logprob', `N=${N} V=${V} withEntropy`, () => logprob({ logits, targets, vocab: V, withEntropy: true }), null, N * V * 4);
  }
  {
    const N = 256, d = 128, V = 4096;
    const h = fill(N * d, 5), W = fill(V * d, 6), targets = Int32Array.from({ length: N }, (_, i) => (i * 31) % V);
    add('fusedLinearLogprob', `N=${N} d=${d} V=${V}`, () => fusedLinearLogprob({ h, W, targets, N, d, V }), 2 * N * d * V, null);
  }
  {
    const B = 64, T = 512;
    const logp = fill(B * T, 7).map((x) => x - 2), oldLogp = fill(B * T, 8).map((x) => x - 2);
    const mask = new Float32Array(B * T).fill(1), rewards = fill(B, 9), groups = Int32Array.from({ length: B }, (_, i) => i >> 3);
    const dlogp = new Float32Array(B * T);
    add('grpoLoss', `B=${B} T=${T} groups of 8`, () => grpoLoss({ logp, oldLogp, mask, rewards, groups, seqLen: T, dlogp }), null, B * T * 4 * 4);
  }

  const info = nativeInfo();
  return { medgym: info.version, addon: nativeAddonPath(), simd: info.simd, threads: info.threads, cpu: os.cpus()[0]?.model ?? 'unknown', bench: rows };
}

export function benchKernelsCommand(flags: BenchKernelsFlags): number {
  if (flags.threads !== undefined) {
    const n = Number(flags.threads);
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`Expected a non-negative integer for --threads but received ${JSON.stringify(flags.threads)}`);
    setNumThreads(n);
  }
  const minMs = flags.minTime === undefined ? 300 : Number(flags.minTime);
  if (!Number.isFinite(minMs) || minMs < 0) throw new RangeError(`Expected milliseconds for --min-time but received ${JSON.stringify(flags.minTime)}`);
  const report = benchKernels(minMs);
  if (flags.json) {
    console.log(JSON.stringify(report, null, 2));
    return 0;
  }
  console.log(`medgym ${report.medgym}, ${report.simd} path, ${report.threads} threads, ${report.cpu}`);
  console.log(`addon: ${report.addon}`);
  console.log(`${'kernel'.padEnd(20)} ${'shape'.padEnd(30)} ${'ms'.padStart(10)} ${'GFLOP/s'.padStart(9)} ${'GB/s'.padStart(8)}`);
  for (const r of report.bench) {
    console.log(`${r.name.padEnd(20)} ${r.shape.padEnd(30)} ${r.ms.toFixed(3).padStart(10)} ${(r.gflops ?? '-').toString().padStart(9)} ${(r.gbps ?? '-').toString().padStart(8)}`);
  }
  return 0;
}
