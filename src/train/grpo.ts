// One GRPO update on a batch of trajectories (SPEC §2): group-relative advantages, then for each
// epoch and mini-batch: forward (requireGrad) over micro-batches, grpoLoss → ∂loss/∂logp, backward
// (gradients accumulate), one AdamW step. old_logp is the sampled logp; the frozen reference (SFT
// policy) is scored only when beta > 0. Equal-reward groups are counted (and optionally dropped).
// A prompt's trajectories share its tokens: with sharePrefix, micro-batches keep groups together and
// the forward computes each group's common prefix once (exact, native/model/prefix.h).
import { grpoAdvantages, grpoLoss } from '../native';
import { zoomHitRate } from '../rewards';
import type { ScoringPolicy, TrainablePolicy } from '../policy';
import { lrAt, type TrainConfig } from './config';
import type { Trajectory } from '../rollout';

export interface GrpoStepMetrics {
  /** Mean GRPO loss over the update's mini-batch steps (NaN when every step was skipped). */
  loss: number;
  /** Learning rate of this step (the warmup/cosine schedule at `step`). */
  lr: number;
  /** Mean reward of the batch's trajectories. */
  reward: number;
  /** Share of trajectories whose answer was correct. */
  accuracy: number;
  /** Share of episodes whose every segment was well formed and that answered. */
  formatRate: number;
  /** Mean number of tool calls per episode. */
  toolCallsPerEpisode: number;
  /** Share of episodes that answered without any tool call (SPEC §7: watch for collapse). */
  noToolShare: number;
  /** Share of episodes that were truncated (turn or token budget, or the model's context). */
  truncatedShare: number;
  /** Share of episodes (with a finding box) whose zoom went to the finding; null without boxes. */
  zoomHit: number | null;
  /** Mean entropy of the generated tokens (weighted by token count). */
  entropy: number;
  /** Mean KL estimator to the reference (null when beta = 0: no reference scored). */
  kl: number | null;
  /** 0.5·mean((logp − old_logp)²) over generated tokens. */
  approxKl: number;
  /** clipFracLow + clipFracHigh. */
  clipFrac: number;
  /** Share of generated tokens clipped below (rho < 1 - epsLow, A < 0). */
  clipFracLow: number;
  /** Share of generated tokens clipped above (rho > 1 + epsHigh, A > 0). */
  clipFracHigh: number;
  /** Groups (prompts) in the batch. */
  numGroups: number;
  /** Groups whose rewards are all equal (their advantages are 0). */
  equalRewardGroups: number;
  /** Trajectories that entered the loss. */
  trajectoriesUsed: number;
  /** Mean global gradient norm (before clipping) over the optimizer steps taken; NaN when none was. */
  gradNorm: number;
  /** Optimizer steps taken; skipped ones (non-finite loss or gradient) are counted apart. */
  updates: number;
  /** Mini-batch steps skipped for a non-finite loss or gradient. */
  skipped: number;
  /** Tokens the policy generated in the batch's rollouts. */
  generatedTokens: number;
  /** Wall seconds of the update's parts: policy (+ reference) forward, GRPO loss, backward, optimizer steps. */
  forwardSeconds: number;
  /** Wall seconds in grpoLoss. */
  lossSeconds: number;
  /** Wall seconds in the policy's backward. */
  backwardSeconds: number;
  /** Wall seconds in the optimizer steps. */
  optimizerSeconds: number;
}

/** Splits [0, n) into k nearly equal contiguous chunks (no empty chunk). */
function chunks<T>(xs: T[], k: number): T[][] {
  const out: T[][] = [];
  const n = Math.min(k, xs.length);
  for (let i = 0; i < n; i++) out.push(xs.slice(Math.floor((i * xs.length) / n), Math.floor(((i + 1) * xs.length) / n)));
  return out;
}
function bySize<T>(xs: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += size) out.push(xs.slice(i, i + size));
  return out;
}
/**
 * Like bySize, but a run of equal keys (a prompt's group) is not split unless it alone exceeds
 * `size`: a micro-batch then holds whole groups whose shared prompt is computed once. Order kept.
 */
function byGroup<T>(xs: T[], size: number, key: (x: T) => number): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  for (let i = 0; i < xs.length; ) {
    let j = i + 1;
    while (j < xs.length && key(xs[j]) === key(xs[i])) j++;
    for (const part of bySize(xs.slice(i, j), size)) {
      if (cur.length + part.length > size) out.push(cur), (cur = []);
      cur.push(...part);
    }
    i = j;
  }
  if (cur.length) out.push(cur);
  return out;
}
/** The prompt groups (2 members or more) of a micro-batch, as forward() prefix groups (longest common prefix). */
function promptGroups(micro: number[], trajs: Trajectory[]): { seqs: number[] }[] {
  const byPrompt = new Map<number, number[]>();
  micro.forEach((b, i) => byPrompt.set(trajs[b].promptIndex, [...(byPrompt.get(trajs[b].promptIndex) ?? []), i]));
  return [...byPrompt.values()].filter((seqs) => seqs.length > 1).map((seqs) => ({ seqs }));
}

export async function grpoUpdate(
  policy: TrainablePolicy,
  ref: ScoringPolicy | null,
  trajs: Trajectory[],
  step: number,
  c: TrainConfig['grpo'],
  injectNan = false,
): Promise<GrpoStepMetrics> {
  const B = trajs.length;
  const lr = lrAt(step, c.steps, c);
  const rewards = Float32Array.from(trajs, (t) => t.reward);
  const groups = Int32Array.from(trajs, (t) => t.promptIndex);
  const adv = grpoAdvantages({ rewards, groups, scale: c.loss.scale });
  const mean = (f: (t: Trajectory) => number): number => trajs.reduce((s, t) => s + f(t), 0) / Math.max(1, B);
  const m: GrpoStepMetrics = {
    loss: 0, lr, reward: mean((t) => t.reward), accuracy: mean((t) => +t.correct), formatRate: mean((t) => +t.wellFormed),
    toolCallsPerEpisode: mean((t) => t.toolCalls), noToolShare: mean((t) => +(t.answerStatus !== 'none' && t.toolCalls === 0)),
    truncatedShare: mean((t) => +t.truncated), zoomHit: zoomHitRate(trajs), entropy: 0, kl: null, approxKl: 0, clipFrac: 0, clipFracLow: 0, clipFracHigh: 0,
    numGroups: adv.numGroups, equalRewardGroups: adv.equalRewardGroups, trajectoriesUsed: 0, gradNorm: 0, updates: 0, skipped: 0,
    generatedTokens: trajs.reduce((s, t) => s + t.generated, 0),
    forwardSeconds: 0, lossSeconds: 0, backwardSeconds: 0, optimizerSeconds: 0,
  };
  let clock = performance.now();
  /** Seconds since the last lap (the update's parts are timed back to back). */
  const lap = (): number => {
    const now = performance.now();
    const dt = (now - clock) / 1000;
    clock = now;
    return dt;
  };
  // Equal-reward groups have A = 0 exactly; filtering only removes them from the aggregation.
  let used = [...Array(B).keys()];
  if (c.filterEqualRewardGroups) {
    const spread = new Map<number, { lo: number; hi: number }>();
    for (const t of trajs) {
      const s = spread.get(t.promptIndex) ?? { lo: Infinity, hi: -Infinity };
      spread.set(t.promptIndex, { lo: Math.min(s.lo, t.reward), hi: Math.max(s.hi, t.reward) });
    }
    used = used.filter((b) => spread.get(trajs[b].promptIndex)!.hi > spread.get(trajs[b].promptIndex)!.lo);
  }
  m.trajectoriesUsed = used.length;
  if (used.length === 0) return m;
  const tNorm = c.loss.tNorm ?? Math.max(...used.map((b) => trajs[b].tokens.length));
  let wSum = 0;
  let lossSum = 0;
  let gradNormSum = 0;
  for (let epoch = 0; epoch < c.epochs; epoch++) {
    for (const mini of chunks(used, c.miniBatches)) {
      const miniMask = mini.reduce((s, b) => s + trajs[b].generated, 0);
      let ok = true;
      const micros = c.sharePrefix ? byGroup(mini, c.microBatchSize, (b) => trajs[b].promptIndex) : bySize(mini, c.microBatchSize);
      for (const micro of micros) {
        lap();
        const seqs = micro.map((b) => ({ tokens: trajs[b].tokens, images: trajs[b].images, mask: trajs[b].mask }));
        const prefixGroups = c.sharePrefix ? promptGroups(micro, trajs) : undefined;
        const cur = await policy.forward(seqs, { temperature: c.temperature, requireGrad: true, prefixGroups });
        const refOut = c.loss.beta > 0 && ref ? await ref.forward(seqs, { temperature: c.temperature, entropy: false, prefixGroups }) : null;
        m.forwardSeconds += lap();
        const T = Math.max(...micro.map((b) => trajs[b].tokens.length));
        const n = micro.length;
        const logp = new Float32Array(n * T);
        const oldLogp = new Float32Array(n * T);
        const mask = new Float32Array(n * T);
        const entropy = new Float32Array(n * T);
        const refLogp = refOut ? new Float32Array(n * T) : undefined;
        micro.forEach((b, i) => {
          logp.set(cur.logp[i], i * T);
          entropy.set(cur.entropy[i], i * T);
          oldLogp.set(trajs[b].oldLogp, i * T);
          mask.set(trajs[b].mask, i * T);
          if (refLogp && refOut) refLogp.set(refOut.logp[i], i * T);
        });
        const r = grpoLoss({
          logp, oldLogp, mask, entropy, refLogp, advantages: Float32Array.from(micro, (b) => adv.advantages[b]), seqLen: T,
          epsLow: c.loss.epsLow, epsHigh: c.loss.epsHigh, dualClip: c.loss.dualClip, beta: refLogp ? c.loss.beta : 0, kl: c.loss.kl, lossAgg: c.loss.lossAgg, tNorm,
        });
        const loss = injectNan ? NaN : r.loss;
        m.lossSeconds += lap();
        if (!Number.isFinite(loss)) {
          ok = false;
          await policy.backward({ dlogp: micro.map((b) => new Float32Array(trajs[b].tokens.length)) }); // consume the activations
          break;
        }
        // Micro-batch losses are means over their own tokens (or sequences): weight them into the mini-batch's.
        const w = c.loss.lossAgg === 'token-mean' ? r.metrics.maskSum / Math.max(1, miniMask) : n / mini.length;
        for (let k = 0; k < r.dlogp.length; k++) r.dlogp[k] *= w;
        await policy.backward({ dlogp: micro.map((_, i) => r.dlogp.subarray(i * T, i * T + trajs[micro[i]].tokens.length)) });
        m.backwardSeconds += lap();
        const tw = r.metrics.maskSum;
        lossSum += loss * w;
        wSum += tw;
        m.entropy += (r.metrics.entropy ?? 0) * tw;
        m.approxKl += r.metrics.approxKl * tw;
        m.clipFracLow += r.metrics.clipFracLow * tw;
        m.clipFracHigh += r.metrics.clipFracHigh * tw;
        if (r.metrics.kl !== null) m.kl = (m.kl ?? 0) + r.metrics.kl * tw;
      }
      if (!ok) {
        await policy.zeroGrad();
        m.skipped++;
        continue;
      }
      lap();
      const s = await policy.step({ lr, weightDecay: c.weightDecay, maxGradNorm: c.maxGradNorm });
      m.optimizerSeconds += lap();
      if (s.finite) {
        m.updates++;
        gradNormSum += s.gradNorm;
      } else m.skipped++;
    }
  }
  const d = Math.max(1e-12, wSum);
  m.entropy /= d;
  m.approxKl /= d;
  m.clipFracLow /= d;
  m.clipFracHigh /= d;
  m.clipFrac = m.clipFracLow + m.clipFracHigh;
  if (m.kl !== null) m.kl /= d;
  m.loss = m.skipped > 0 && m.updates === 0 ? NaN : lossSum / Math.max(1, c.epochs * Math.min(c.miniBatches, used.length));
  m.gradNorm = m.updates ? gradNormSum / m.updates : NaN;
  return m;
}
