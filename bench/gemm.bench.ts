// SGEMM: medgym's packed kernels (each SIMD path) against PyTorch's torch.mm (OpenBLAS) at the same
// thread count, and a naive JS triple loop on the smallest shape. GFLOP/s = 2*M*N*K / best time.
import { gemm, nativeInfo, setSimdLevel, type SimdLevel } from '../src/native';
import { printTable, runPeer, timeSync } from './harness';

interface Shape {
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  note: string;
}
const SHAPES: Shape[] = [
  { M: 512, N: 384, K: 384, transA: false, transB: false, note: 'A@B' },
  { M: 512, N: 1536, K: 384, transA: false, transB: false, note: 'A@B (MLP up)' },
  { M: 2048, N: 384, K: 1024, transA: false, transB: false, note: 'A@B' },
  { M: 512, N: 384, K: 1536, transA: false, transB: false, note: 'A@B (MLP down)' },
  { M: 512, N: 384, K: 384, transA: true, transB: false, note: 'A^T@B (dW)' },
  { M: 512, N: 384, K: 384, transA: false, transB: true, note: 'A@B^T (dX)' },
  { M: 1, N: 1152, K: 384, transA: false, transB: true, note: 'x@W^T (generation)' },
  { M: 16, N: 1152, K: 384, transA: false, transB: true, note: 'x@W^T (16 sequences)' },
  { M: 8, N: 1152, K: 384, transA: false, transB: false, note: 'x@W (small M)' },
];
const LEVELS: SimdLevel[] = ['avx512', 'avx2', 'portable'];

interface PeerResult extends Shape {
  minMs: number;
}

const gflops = (s: Shape, ms: number) => (2 * s.M * s.N * s.K) / (ms * 1e6);
const label = (s: Shape) => `${s.M}x${s.N}x${s.K} ${s.note}`;

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

/** The naive baseline: C[i,j] = sum_k A[i,k] B[k,j] in plain JS (no transposes). */
function naiveJs(s: Shape, A: Float32Array, B: Float32Array, C: Float32Array): void {
  const { M, N, K } = s;
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc += A[i * K + k] * B[k * N + j];
      C[i * N + j] = acc;
    }
}

type Peer = { results: PeerResult[]; torch: string; threads: number; blas: string } | null;

/** medgym GFLOP/s of every shape on each SIMD path (best of several runs). */
function measureOurs(data: { A: Float32Array; B: Float32Array; C: Float32Array }[]): number[][] {
  return SHAPES.map((s, i) =>
    LEVELS.map((level) => {
      setSimdLevel(level);
      const t = timeSync(() => gemm({ ...s, ...data[i] }), { minTimeMs: level === 'portable' ? 150 : 300 });
      return gflops(s, t.minMs);
    }),
  );
}

export async function run(): Promise<void> {
  const start = nativeInfo().simd;
  const data = SHAPES.map((s, i) => ({
    A: randomF32(s.M * s.K, 1 + i),
    B: randomF32(s.K * s.N, 2 + i),
    C: new Float32Array(s.M * s.N),
  }));
  // Other processes share the cores, so medgym and the peer alternate twice and each keeps its best.
  const peerArgs = { shapes: SHAPES.map(({ M, N, K, transA, transB }) => ({ M, N, K, transA, transB })) };
  const ours: number[][][] = [];
  const peers: Peer[] = [];
  for (let round = 0; round < 2; round++) {
    ours.push(measureOurs(data));
    peers.push(runPeer<NonNullable<Peer>>('gemm_torch.py', peerArgs));
  }
  setSimdLevel(start.startsWith('avx512') ? 'avx512' : start.startsWith('avx2') ? 'avx2' : 'portable');
  const peer = peers[0];
  const rows: (string | number)[][] = SHAPES.map((s, i) => {
    const best = LEVELS.map((_, l) => Math.max(...ours.map((r) => r[i][l])));
    const torch = peer ? Math.max(...peers.map((p) => gflops(s, p!.results[i].minMs))) : NaN;
    let naive = '';
    if (i === 0) {
      const t = timeSync(() => naiveJs(s, data[i].A, data[i].B, data[i].C), { warmup: 1, minRuns: 2, minTimeMs: 0 });
      naive = gflops(s, t.minMs).toFixed(2);
    }
    return [label(s), ...best, peer ? torch : 'n/a', naive, peer ? best[0] / torch : 'n/a'];
  });
  const who = peer ? `torch ${peer.torch} (${peer.blas}), ${peer.threads} threads` : 'no PyTorch peer';
  printTable(`gemm, GFLOP/s (best of 2 alternating rounds); peer: ${who}`,
    ['shape MxNxK', 'medgym avx512', 'medgym avx2', 'medgym portable', 'torch.mm', 'naive JS', 'avx512 / torch'],
    rows);
}
