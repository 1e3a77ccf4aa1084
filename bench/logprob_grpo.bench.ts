// One GRPO step on the logits, B = 64 sequences of T = 512 tokens, V = 320:
// logits -> logp (tau = 1) + entropy -> GRPO loss (token-mean, k3, beta 0.04 with refLogp) ->
// backward to dlogits, medgym (sync, all threads) against PyTorch eager with autograd.
// The mask is all ones, so medgym skips no rows. Napkin math: the forward reads the logits once
// (42 MB), the backward reads them again and writes dlogits (84 MB); each pass is one exp per logit.
import { grpoLoss, logprob, logprobBackward, nativeInfo, setSimdLevel } from '../src/native';
import { printTable, runPeer, timeSync, Timing } from './harness';
import { Rng } from '../test/helpers/random';

const B = 64, T = 512, V = 320, G = 8;
const opts = { tau: 1, beta: 0.04, epsLow: 0.2, epsHigh: 0.2, dualClip: 3 };

export async function run(): Promise<void> {
  const N = B * T;
  const rng = new Rng(1);
  const logits = rng.f32(N * V, 2);
  const targets = rng.i32(N, 0, V);
  const logp = new Float32Array(N), entropy = new Float32Array(N), lse = new Float32Array(N);
  logprob({ logits, targets, vocab: V, logp, lse });
  const oldLogp = Float32Array.from(logp, (v) => v + 0.1 * rng.normal());
  const refLogp = Float32Array.from(logp, (v) => v + 0.1 * rng.normal());
  const mask = new Float32Array(N).fill(1);
  const rewards = Float32Array.from({ length: B }, () => rng.int(0, 2));
  const groups = Int32Array.from({ length: B }, (_, i) => Math.floor(i / (B / G)));
  const dlogp = new Float32Array(N), dlogits = new Float32Array(N * V);

  const forward = () => logprob({ logits, targets, vocab: V, temperature: opts.tau, logp, entropy, lse });
  let loss = 0;
  const step = () => {
    forward();
    loss = grpoLoss({
      logp, oldLogp, refLogp, mask, entropy, rewards, groups, seqLen: T, dlogp,
      beta: opts.beta, kl: 'k3', lossAgg: 'token-mean', epsLow: opts.epsLow, epsHigh: opts.epsHigh, dualClip: opts.dualClip,
    }).loss;
    logprobBackward({ logits, targets, vocab: V, temperature: opts.tau, lse, dlogp, dlogits });
  };
  const grpoOnly = () => grpoLoss({ logp, oldLogp, refLogp, mask, entropy, rewards, groups, seqLen: T, dlogp, beta: opts.beta });
  const backOnly = () => logprobBackward({ logits, targets, vocab: V, lse, dlogp, dlogits });

  const fwd = timeSync(forward);
  const full = timeSync(step);
  const g = timeSync(grpoOnly);
  const bwd = timeSync(backOnly);
  type Peer = { forward: Timing; step: Timing; threads: number };
  const peerArgs = { B, T, V, G, ...opts };
  const peer = runPeer<Peer>('logprob_grpo_torch.py', peerArgs);
  // Eager PyTorch allocates fresh 42 MB tensors at every op; with glibc's defaults they are mmapped
  // and page-faulted in each time. Rerun with malloc keeping freed memory (what a caching allocator
  // would give), the stronger baseline that the headline ratio uses.
  const tunables = { MALLOC_MMAP_THRESHOLD_: '4294967296', MALLOC_TRIM_THRESHOLD_: '4294967296' };
  const saved = Object.fromEntries(Object.keys(tunables).map((k) => [k, process.env[k]]));
  Object.assign(process.env, tunables);
  let warm: Peer | null;
  try {
    warm = runPeer<Peer>('logprob_grpo_torch.py', peerArgs);
  } finally {
    for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
  }

  const gbs = (bytes: number, t: Timing) => bytes / 1e6 / t.minMs; // GB/s
  const logitBytes = N * V * 4;
  const ratio = (p: Timing | undefined, t: Timing) => (p ? `${(p.minMs / t.minMs).toFixed(2)}x` : '-');
  const row = (name: string, t: Timing, p: Timing | undefined, w: Timing | undefined, bytes: number) => [
    name, t.minMs, t.medianMs, bytes ? gbs(bytes, t) : '-', p ? p.minMs : '-', w ? w.minMs : '-', ratio(p, t), ratio(w, t),
  ];
  printTable(
    `logprob + GRPO, B=${B} T=${T} V=${V} (${N} rows), loss ${loss.toFixed(5)}` + (peer ? `, torch threads ${peer.threads}` : ''),
    ['stage', 'medgym min ms', 'median ms', 'medgym GB/s', 'torch min ms', 'torch (malloc kept) min ms', 'vs torch', 'vs torch (malloc kept)'],
    [
      row('forward: logp + entropy', fwd, peer?.forward, warm?.forward, logitBytes),
      row('full step: fwd + GRPO + bwd -> dlogits', full, peer?.step, warm?.step, 3 * logitBytes),
      row('  GRPO loss alone', g, undefined, undefined, 0),
      row('  logprob backward alone', bwd, undefined, undefined, 2 * logitBytes),
    ],
  );

  // The kernels alone on each SIMD path (medgym only), for the napkin math: ns per logit.
  const levels = ['avx512', 'avx2', 'portable'] as const;
  const rows: (string | number)[][] = [];
  for (const level of levels) {
    setSimdLevel(level);
    const active = nativeInfo().simd;
    const f = timeSync(() => logprob({ logits, targets, vocab: V, logp, entropy, lse }), { minRuns: 3, minTimeMs: 200 });
    const b = timeSync(backOnly, { minRuns: 3, minTimeMs: 200 });
    const be = timeSync(() => logprobBackward({ logits, targets, vocab: V, lse, dlogp, dentropy: dlogp, dlogits }), { minRuns: 3, minTimeMs: 200 });
    const ns = (t: Timing) => (t.minMs * 1e6) / (N * V);
    rows.push([`${level} (${active})`, f.minMs, ns(f), b.minMs, ns(b), be.minMs, ns(be)]);
  }
  setSimdLevel('avx512');
  printTable(`logprob kernels per SIMD path, ${N} x ${V}, ${nativeInfo().threads} threads`,
    ['path', 'fwd+entropy ms', 'ns/logit', 'bwd (dlogp) ms', 'ns/logit', 'bwd (dlogp+dentropy) ms', 'ns/logit'], rows);
}

if (require.main === module) void run();
