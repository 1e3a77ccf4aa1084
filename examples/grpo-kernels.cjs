// Call the native kernels on plain typed arrays (CommonJS): the GRPO loss with group-normalised
// advantages, and the fused linear log-prob (log softmax(h W^T)[target] without the [N, V] logits),
// checked against its plain reference. The addon loads on the first call (the CPU prebuilt).
//   node examples/grpo-kernels.cjs
const { grpoLoss, fusedLinearLogprob, nativeInfo } = require('medgym/kernels');

/** Deterministic data in [-1, 1). */
function fill(n, seed) {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s >>> 8) / 8388608 - 1;
  }
  return a;
}

// GRPO: 2 prompts × 4 samples, 6 tokens each; the last 2 tokens of every sample are padding.
const B = 8, T = 6;
const logp = fill(B * T, 1).map((x) => x - 1.5);
const oldLogp = logp.map((x, i) => x + 0.05 * Math.sin(i));
const mask = Float32Array.from({ length: B * T }, (_, i) => (i % T < T - 2 ? 1 : 0));
const rewards = Float32Array.from([1, 0, 0, 1, 1, 1, 0, 0]);
const groups = Int32Array.from([0, 0, 0, 0, 1, 1, 1, 1]);
const g = grpoLoss({ logp, oldLogp, mask, rewards, groups, seqLen: T });

// Fused linear log-prob: 4 rows, hidden 8, vocabulary 32.
const N = 4, d = 8, V = 32;
const h = fill(N * d, 2), W = fill(V * d, 3), targets = Int32Array.from([3, 17, -1, 31]);
const fused = fusedLinearLogprob({ h, W, targets, N, d, V });
const ref = fusedLinearLogprob({ h, W, targets, N, d, V, impl: 'reference' });
const maxDiff = Math.max(...fused.logp.map((x, i) => Math.abs(x - ref.logp[i])));

console.log(
  JSON.stringify({
    simd: nativeInfo().simd,
    grpo: { loss: g.loss, advantages: Array.from(g.advantages), clipFracLow: g.metrics.clipFracLow, approxKl: g.metrics.approxKl },
    fusedLinearLogprob: { logp: Array.from(fused.logp), entropy: Array.from(fused.entropy), maxDiffVsReference: maxDiff },
  }),
);
if (!(maxDiff < 1e-4)) process.exit(1);
