// gemmBf16 (bf16 weights, 'exact' and 'bf16dot') against the fp32 sgemm (gemm, transB) on the same
// widened weights and against PyTorch's bf16 torch.matmul, at the same thread count, on the Linear
// shapes of Qwen2-VL-2B (hidden 1536, MLP 8960) for decode (M = 1, 16) and prefill (M = 512).
// GFLOP/s = 2*M*N*K / best time.
// Two tables: "hot", every call on the same weights (a 27.5 MB bf16 MLP weight may then sit in L3),
// and "cold" decode, each call on the next of several weight copies (>= 256 MB of each dtype), so
// that the weights come from DRAM as in a model's decode. "W GB/s" = weight bytes read per second:
// against the machine's memory bandwidth (the roofline of decode).
//   npx tsx bench/gemm_bf16.ts
import { spawnSync } from 'child_process';
import { bf16ToF32, f32ToBf16, gemm, gemmBf16, nativeInfo, type Bf16Mode } from '../src/native';
import { machineLine, printTable, timeSync, torchAvailable, TORCH_HINT } from './harness';

interface Shape {
  M: number;
  N: number;
  K: number;
  note: string;
  /** Weight copies cycled through (1: hot). */
  copies: number;
}
const LINEARS: [number, number, string][] = [
  [1536, 8960, 'MLP up/gate'],
  [8960, 1536, 'MLP down'],
  [1536, 1536, 'attn q/o'],
];
const COLD_BYTES = 256 << 20;
const HOT: Shape[] = LINEARS.flatMap(([K, N, note]) => [1, 16, 512].map((M) => ({ M, N, K, note, copies: 1 })));
const COLD: Shape[] = LINEARS.map(([K, N, note]) => ({ M: 1, N, K, note, copies: Math.ceil(COLD_BYTES / (2 * N * K)) }));
const ROUNDS = 2; // other processes share the cores: ours and torch alternate, each keeps its best

const gflops = (s: Shape, ms: number) => (2 * s.M * s.N * s.K) / (ms * 1e6);

function randomF32(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    a[i] = (x >>> 0) / 2 ** 31 - 1;
  }
  return a;
}

// torch.matmul(x, w.t()) on bf16 tensors (cycling through `copies` weights), best ms per shape.
const TORCH = `
import json, sys, time, torch
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
out = []
for s in args["shapes"]:
    x = torch.randn(s["M"], s["K"]).bfloat16()
    ws = [torch.randn(s["N"], s["K"]).bfloat16() for _ in range(s["copies"])]
    i = [0]
    def f():
        i[0] = (i[0] + 1) % len(ws)
        return torch.matmul(x, ws[i[0]].t())
    for _ in range(2): f()
    best, t0, n = 1e9, time.perf_counter(), 0
    while n < 5 or time.perf_counter() - t0 < 0.25:
        a = time.perf_counter(); f(); best = min(best, time.perf_counter() - a); n += 1
    out.append(best * 1e3)
    del ws
print(json.dumps({"minMs": out, "torch": torch.__version__, "threads": torch.get_num_threads()}))
`;
type TorchResult = { minMs: number[]; torch: string; threads: number };

function runTorch(shapes: Shape[]): TorchResult | null {
  if (!torchAvailable()) return null;
  const arg = JSON.stringify({ threads: nativeInfo().threads, shapes });
  const res = spawnSync(process.env.MEDGYM_BENCH_PYTHON ?? '/usr/bin/python3', ['-c', TORCH, arg], { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`torch peer failed: ${res.stderr}`);
  const lines = res.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]) as TorchResult;
}

interface Best {
  exact: number;
  bf16dot: number;
  packed: number;
  sgemm: number;
  torch: number;
}

/** Best ms of ours and sgemm on one shape (weights made here, dropped after). */
function measureOurs(s: Shape, seed: number, best: Best): void {
  const X = randomF32(s.M * s.K, seed);
  const W0 = f32ToBf16(randomF32(s.N * s.K, seed + 1));
  const W = Array.from({ length: s.copies }, (_, c) => (c === 0 ? W0 : W0.slice()));
  const Y = new Float32Array(s.M * s.N);
  let c = 0;
  const next = () => (c = (c + 1) % s.copies);
  const time = (fn: () => void) => timeSync(fn, { minTimeMs: 200 }).minMs;
  for (const mode of ['exact', 'bf16dot', 'packed'] as Bf16Mode[]) {
    best[mode] = Math.min(best[mode], time(() => gemmBf16({ X, W: W[next()], Y, M: s.M, N: s.N, K: s.K, mode })));
  }
  // fp32 weights are twice the bytes: half the copies give the same cold footprint.
  const Wf = W.slice(0, Math.max(1, Math.ceil(s.copies / 2))).map(bf16ToF32);
  best.sgemm = Math.min(best.sgemm, time(() => gemm({ A: X, B: Wf[next() % Wf.length], C: Y, M: s.M, N: s.N, K: s.K, transB: true })));
}

function table(title: string, shapes: Shape[]): void {
  const best: Best[] = shapes.map(() => ({ exact: Infinity, bf16dot: Infinity, packed: Infinity, sgemm: Infinity, torch: Infinity }));
  let peer: TorchResult | null = null;
  for (let round = 0; round < ROUNDS; round++) {
    shapes.forEach((s, i) => measureOurs(s, 1 + 100 * i, best[i]));
    peer = runTorch(shapes);
    if (peer) peer.minMs.forEach((ms, i) => (best[i].torch = Math.min(best[i].torch, ms)));
  }
  const rows = shapes.map((s, i) => {
    const b = best[i];
    return [
      `${s.M}x${s.K} @ (${s.N}x${s.K})^T ${s.note}`,
      gflops(s, b.exact), gflops(s, b.bf16dot), gflops(s, b.packed), gflops(s, b.sgemm), peer ? gflops(s, b.torch) : 'n/a',
      b.sgemm / b.exact, b.sgemm / b.packed, peer ? b.torch / b.bf16dot : 'n/a',
      (2 * s.N * s.K) / (b.exact * 1e6), (2 * s.N * s.K) / (b.bf16dot * 1e6), (4 * s.N * s.K) / (b.sgemm * 1e6),
    ];
  });
  const who = peer ? `torch ${peer.torch} bf16 torch.matmul, ${peer.threads} threads` : TORCH_HINT;
  printTable(`${title}, GFLOP/s (best of ${ROUNDS} alternating rounds); ${machineLine()}; peer: ${who}`,
    ['M x K @ (N x K)^T', 'exact', 'bf16dot', 'packed', 'fp32 sgemm', 'torch bf16', 'exact speedup vs sgemm', 'packed speedup vs sgemm', 'bf16dot speedup vs torch',
      'W GB/s exact', 'W GB/s bf16dot', 'W GB/s sgemm'],
    rows);
}

export async function run(): Promise<void> {
  table('gemmBf16, hot weights', HOT);
  table('gemmBf16, cold decode (weights from DRAM)', COLD);
}

if (require.main === module) {
  run().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
