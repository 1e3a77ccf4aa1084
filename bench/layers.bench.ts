// Layer kernels vs PyTorch eager (same thread count): causal attention fwd+bwd, LayerNorm fwd+bwd,
// AdamW step. Ratios > 1 mean medgym is faster.
import { adamw, attention, attentionBackward, layerNorm, layerNormBackward } from '../src/native';
import { printTable, runPeer, timeSync, type Timing } from './harness';

const ATT = { B: 16, T: 512, C: 384, H: 6 };
const LN = { N: 8192, C: 384 };
const ADAM_N = 10_000_000;

function fill(n: number, seed: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = ((s >>> 8) / 8388608 - 1) * scale;
  }
  return a;
}

interface Peer {
  attentionFwd: Timing;
  attention: Timing;
  layernormFwd: Timing;
  layernormFwdBwd: Timing;
  adamw: Timing;
  adamwForeach: Timing;
}

export async function run(): Promise<void> {
  const { B, T, C, H } = ATT;
  const qkv = fill(B * T * 3 * C, 1);
  const dout = fill(B * T * C, 2);
  const out = new Float32Array(B * T * C);
  const lse = new Float32Array(B * H * T);
  const dqkv = new Float32Array(B * T * 3 * C);
  const attFwd = timeSync(() => attention({ qkv, B, T, C, H, out, lse }), { warmup: 1, minRuns: 3, minTimeMs: 1000 });
  const attStep = timeSync(
    () => {
      attention({ qkv, B, T, C, H, out, lse });
      attentionBackward({ dout, qkv, out, lse, B, T, C, H, dqkv });
    },
    { warmup: 1, minRuns: 3, minTimeMs: 1000 },
  );

  const x = fill(LN.N * LN.C, 3, 2);
  const w = fill(LN.C, 4);
  const bias = fill(LN.C, 5);
  const ldout = fill(LN.N * LN.C, 6);
  const lnOut = new Float32Array(LN.N * LN.C);
  const mean = new Float32Array(LN.N);
  const rstd = new Float32Array(LN.N);
  const dx = new Float32Array(LN.N * LN.C);
  const dw = new Float32Array(LN.C);
  const db = new Float32Array(LN.C);
  const lnArgs = { input: x, weight: w, bias, C: LN.C, out: lnOut, mean, rstd };
  const lnFwd = timeSync(() => layerNorm(lnArgs));
  const lnStep = timeSync(() => {
    layerNorm(lnArgs);
    dw.fill(0);
    db.fill(0);
    layerNormBackward({ dout: ldout, input: x, weight: w, mean, rstd, C: LN.C, dinput: dx, dweight: dw, dbias: db });
  });

  const param = fill(ADAM_N, 7);
  const grad = fill(ADAM_N, 8, 0.1);
  const m = new Float32Array(ADAM_N);
  const v = new Float32Array(ADAM_N);
  let step = 0;
  const adam = timeSync(() => adamw({ param, grad, m, v, lr: 1e-3, weightDecay: 0.01, step: ++step }));

  const peer = runPeer<Peer>('layers_torch.py', { attention: ATT, layernorm: LN, adamw: { n: ADAM_N } });
  const r = (ours: Timing, theirs?: Timing) => (theirs ? theirs.medianMs / ours.medianMs : NaN);
  const t = (x?: Timing) => (x ? x.medianMs : NaN);
  // napkin math: causal attention fwd ≈ 2 GEMMs over half the T×T tile: 2·2·B·H·(T²/2)·hd flop
  const hd = C / H;
  const fwdFlop = 2 * 2 * B * H * ((T * T) / 2) * hd;
  printTable(
    'layers: medgym vs PyTorch eager (median ms; ratio = torch / medgym, > 1 is faster)',
    ['kernel', 'shape', 'medgym ms', 'torch ms', 'ratio', 'note'],
    [
      ['attention fwd', `B=${B} T=${T} C=${C} H=${H}`, attFwd.medianMs, t(peer?.attentionFwd), r(attFwd, peer?.attentionFwd), `${(fwdFlop / attFwd.medianMs / 1e6).toFixed(1)} GFLOP/s (causal half)`],
      ['attention fwd+bwd', `B=${B} T=${T} C=${C} H=${H}`, attStep.medianMs, t(peer?.attention), r(attStep, peer?.attention), 'torch: explicit formula + causal mask'],
      ['layernorm fwd', `N=${LN.N} C=${LN.C}`, lnFwd.medianMs, t(peer?.layernormFwd), r(lnFwd, peer?.layernormFwd), `${((2 * LN.N * LN.C * 4) / lnFwd.medianMs / 1e6).toFixed(1)} GB/s`],
      ['layernorm fwd+bwd', `N=${LN.N} C=${LN.C}`, lnStep.medianMs, t(peer?.layernormFwdBwd), r(lnStep, peer?.layernormFwdBwd), ''],
      ['adamw step', `n=${ADAM_N}`, adam.medianMs, t(peer?.adamw), r(adam, peer?.adamw), `torch foreach=False; ${((7 * ADAM_N * 4) / adam.medianMs / 1e6).toFixed(1)} GB/s`],
      ['adamw step', `n=${ADAM_N}`, adam.medianMs, t(peer?.adamwForeach), r(adam, peer?.adamwForeach), 'torch foreach=True'],
    ],
  );
}
