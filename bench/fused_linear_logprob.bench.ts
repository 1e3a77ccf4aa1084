// Fused linear log-prob (SPEC §1 head: logits = h @ W^T, log_softmax / tau, gather, entropy) against
// medgym's own unfused path (GEMM to N x V logits + log-prob kernels) and the unfused PyTorch eager path
// at the same thread count, for N = 2048 tokens, d = 384.
// Prints time of forward and forward+backward and the peak extra memory: fused workspace (formula) and
// measured peak RSS increase of a first call in a fresh process, against the N x V logits + N x V dlogits floats an unfused backward holds
// (and torch's own measured peak RSS increase). Targets: memory <= 1/8 of unfused at V >= 8192, no slower.
// MEDGYM_BENCH_FUSED_V="320,8192" picks the vocab sizes (default 320, 8192, 32768).
import { spawnSync } from 'child_process';
import * as path from 'path';
import {
  gemm,
  logprob,
  logprobBackward,
  fusedLinearLogprob,
  fusedLinearLogprobBackward,
  fusedLinearLogprobWorkspaceBytes,
  nativeInfo,
} from '../src/native';
import { Rng } from '../test/helpers/random';
import { printTable, runPeer, timeSync, Timing } from './harness';

interface PeerResult {
  fwd: Timing;
  fwdBwd: Timing;
  unfusedBytes: number;
  rssDelta: number | null;
}

/** Peak RSS increase of the first fused forward+backward, measured in a fresh child process. */
function peakRssDelta(N: number, d: number, V: number, tau: number): number {
  const res = spawnSync(
    process.execPath,
    [require.resolve('tsx/cli'), path.join(__dirname, 'fused_linear_logprob_rss.ts'), JSON.stringify({ N, d, V, tau })],
    { encoding: 'utf8' },
  );
  if (res.status !== 0) throw new Error(`fused_linear_logprob_rss.ts failed: ${res.stderr}`);
  const lines = res.stdout.trim().split('\n');
  return (JSON.parse(lines[lines.length - 1]) as { rssDelta: number | null }).rssDelta ?? Number.NaN;
}

const MiB = (b: number | null) => (b === null || !Number.isFinite(b) ? 'n/a' : (b / 2 ** 20).toFixed(b < 2 ** 20 ? 2 : 1));
const ratio = (a: number, b: number | undefined) => (b && Number.isFinite(a) ? (a / b).toFixed(3) : 'n/a');

export async function run(): Promise<void> {
  const [N, d, tau] = [2048, 384, 1.0];
  const vocab = (process.env.MEDGYM_BENCH_FUSED_V ?? '320,8192,32768').split(',').map(Number);
  // Few runs: a forward at V = 32768 is ~26 GFLOP (and far slower on the placeholder GEMM).
  const runs = { warmup: 1, minRuns: 3, minTimeMs: 300 };
  const rows: (string | number)[][] = [];
  const mem: (string | number)[][] = [];
  for (const V of vocab) {
    const rng = new Rng(V);
    const h = rng.f32(N * d);
    const W = rng.f32(V * d, 0.05);
    const targets = rng.i32(N, 0, V);
    const dlogp = rng.f32(N);
    const dentropy = rng.f32(N);
    const logp = new Float32Array(N), entropy = new Float32Array(N), lse = new Float32Array(N);
    const dh = new Float32Array(N * d), dW = new Float32Array(V * d);
    const fwd = () => fusedLinearLogprob({ h, W, targets, N, d, V, temperature: tau, logp, entropy, lse });
    const fwdBwd = () => {
      fwd();
      fusedLinearLogprobBackward({ h, W, targets, lse, entropy, dlogp, dentropy, N, d, V, temperature: tau, dh, dW });
    };
    // medgym's own unfused path: materialize logits [N,V] with the GEMM, then the log-prob kernels.
    const logits = new Float32Array(N * V), dlogits = new Float32Array(N * V);
    const unfusedFwd = () => {
      gemm({ A: h, B: W, C: logits, M: N, N: V, K: d, transB: true });
      logprob({ logits, targets, vocab: V, temperature: tau, logp, entropy, lse });
    };
    const unfusedFwdBwd = () => {
      unfusedFwd();
      logprobBackward({ logits, targets, vocab: V, temperature: tau, lse, dlogp, dentropy, dlogits });
      gemm({ A: dlogits, B: W, C: dh, M: N, N: d, K: V });
      gemm({ A: dlogits, B: h, C: dW, M: V, N: d, K: N, transA: true, beta: 1 });
    };
    const tf = timeSync(fwd, runs);
    const tfb = timeSync(fwdBwd, runs);
    const uf = timeSync(unfusedFwd, runs);
    const ufb = timeSync(unfusedFwdBwd, runs);
    const rss = peakRssDelta(N, d, V, tau);
    const ws = Math.max(
      fusedLinearLogprobWorkspaceBytes({ N, d, V, pass: 'forward' }),
      fusedLinearLogprobWorkspaceBytes({ N, d, V, pass: 'backward' }),
    );
    const peer = runPeer<PeerResult>('fused_linear_torch.py', { N, d, V, tau, ...runs });
    const unfused = 8 * N * V;
    rows.push([
      V,
      tf.medianMs,
      uf.medianMs,
      ratio(tf.medianMs, uf.medianMs),
      peer ? peer.fwd.medianMs : 'n/a',
      ratio(tf.medianMs, peer?.fwd.medianMs),
      tfb.medianMs,
      ufb.medianMs,
      ratio(tfb.medianMs, ufb.medianMs),
      peer ? peer.fwdBwd.medianMs : 'n/a',
      ratio(tfb.medianMs, peer?.fwdBwd.medianMs),
    ]);
    mem.push([
      V,
      MiB(ws),
      MiB(rss),
      MiB(unfused),
      peer ? MiB(peer.rssDelta) : 'n/a',
      ratio(ws, unfused),
      ratio(rss, unfused),
      ratio(rss, peer?.rssDelta ?? undefined),
    ]);
  }
  const threads = nativeInfo().threads;
  printTable(
    `fused linear log-prob: time (median ms), N=${N} d=${d}, ${threads} threads; ratios = fused / other (< 1 is faster)`,
    ['V', 'fwd fused', 'fwd unfused', 'ratio', 'fwd torch', 'ratio', 'fwd+bwd fused', 'fwd+bwd unfused', 'ratio', 'fwd+bwd torch', 'ratio'],
    rows,
  );
  printTable(
    'fused linear log-prob: peak extra memory of forward+backward (MiB); target fused/unfused <= 0.125 at V >= 8192',
    ['V', 'fused workspace', 'fused RSS peak', 'unfused NxV logits+dlogits', 'torch RSS peak', 'ws/unfused', 'RSS/unfused', 'RSS/torch RSS'],
    mem,
  );
}
