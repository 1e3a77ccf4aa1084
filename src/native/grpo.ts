// GRPO advantages and clipped policy loss with its gradient w.r.t. logp (SPEC §2).
// See native/cpu/grpo.h for the formulas, the aggregation rules and the metric definitions.
import { nativeFunctions } from './runtime';

/** How group-relative advantages are scaled: "std" A = (r - mean) / (std + 1e-6), "none" A = r - mean (Dr. GRPO). */
export type GrpoScale = 'std' | 'none';
/** KL estimator vs the reference policy, delta = refLogp - logp: k1 = -delta, k2 = delta^2/2, k3 = e^delta - delta - 1. */
export type GrpoKl = 'k1' | 'k2' | 'k3';
/** Loss aggregation over the masked tokens (SPEC §2). */
export type GrpoLossAgg = 'token-mean' | 'seq-mean-token-mean' | 'seq-mean-token-sum' | 'seq-mean-token-sum-norm';

/** Loss options; every field has the SPEC default. */
export interface GrpoOptions {
  /** Lower clip range: rho is clipped below at 1 - epsLow (in [0, 1]). Default 0.2. */
  epsLow?: number;
  /** Upper clip range: rho is clipped above at 1 + epsHigh. Default 0.2 (DAPO uses 0.28). */
  epsHigh?: number;
  /** Dual-clip constant c: for A < 0 the loss is capped at -c A. Off when c <= 1. Default 3. */
  dualClip?: number;
  /** KL weight beta (>= 0). Default 0: no reference model needed. */
  beta?: number;
  /** KL estimator. Default 'k3'. */
  kl?: GrpoKl;
  /** Aggregation. Default 'token-mean'. */
  lossAgg?: GrpoLossAgg;
  /** T_norm of 'seq-mean-token-sum-norm' (> 0). Default seqLen. */
  tNorm?: number;
  /** Advantage scaling when advantages are computed from rewards. Default 'std'. */
  scale?: GrpoScale;
}

export const GRPO_DEFAULTS: Required<Omit<GrpoOptions, 'tNorm'>> = {
  epsLow: 0.2,
  epsHigh: 0.2,
  dualClip: 3,
  beta: 0,
  kl: 'k3',
  lossAgg: 'token-mean',
  scale: 'std',
};

export interface GrpoAdvantagesArgs {
  /** [B] rewards (finite). */
  rewards: Float32Array;
  /** [B] group id of each sequence: any int32 values, members need not be contiguous. */
  groups: Int32Array;
  /** Default 'std'. */
  scale?: GrpoScale;
  /** [B] output; allocated when omitted. */
  advantages?: Float32Array;
  /** Run the plain serial reference instead of the optimized kernel (tests, benchmarks). */
  reference?: boolean;
}

export interface GrpoAdvantagesResult {
  /** [B] the advantages (the `advantages` buffer when given). */
  advantages: Float32Array;
  /** Distinct group ids in `groups`. */
  numGroups: number;
  /** Groups whose rewards are all equal (groups of one included): their advantages are exactly 0. */
  equalRewardGroups: number;
}

export interface GrpoLossArgs extends GrpoOptions {
  /** [B, T] log-probs of the current policy (the gradient is taken w.r.t. these). */
  logp: Float32Array;
  /** [B, T] log-probs of the policy that sampled. */
  oldLogp: Float32Array;
  /** [B, T] log-probs of the frozen reference policy; required when beta > 0. */
  refLogp?: Float32Array;
  /**
   * [B, T] token weights: 1 on tokens the policy generated, 0 elsewhere. Any finite non-negative
   * weight is accepted (fractional weights weight tokens in the loss and the metrics).
   */
  mask: Float32Array;
  /** [B, T] per-token entropies, only for the `entropy` metric. */
  entropy?: Float32Array;
  /** [B] rewards with `groups`: advantages are computed (SPEC §2). */
  rewards?: Float32Array;
  /** [B] group ids, with `rewards`. */
  groups?: Int32Array;
  /** [B] precomputed advantages, instead of rewards + groups. */
  advantages?: Float32Array;
  /** B; default the length of `rewards` or `advantages`. */
  batch?: number;
  /** T, positions per sequence. */
  seqLen: number;
  /** [B, T] output d loss / d logp; allocated when omitted. */
  dlogp?: Float32Array;
  /** Run the plain serial reference instead of the optimized kernel (tests, benchmarks). */
  reference?: boolean;
}

/** Metrics, as weighted means over the mask M (0 when the mask is all zero). */
export interface GrpoMetrics {
  /** Share of tokens with rho < 1 - epsLow and A < 0 (their gradient is clipped to 0). */
  clipFracLow: number;
  /** Share of tokens with rho > 1 + epsHigh and A > 0 (their gradient is clipped to 0). */
  clipFracHigh: number;
  /** Share of tokens where the dual clip caps the loss (A < 0, c > 1, max(L1, L2) > -c A). */
  dualClipFrac: number;
  /** 0.5 * mean of (logp - oldLogp)^2. */
  approxKl: number;
  /** Mean of the chosen KL estimator vs refLogp; null without refLogp. */
  kl: number | null;
  /** Mean of the given entropies; null without `entropy`. */
  entropy: number | null;
  /** Sum of the mask. */
  maskSum: number;
  /** Groups in the batch; null when advantages were given. */
  numGroups: number | null;
  /** Groups whose rewards are all equal (groups of one included); null when advantages were given. */
  equalRewardGroups: number | null;
}

export interface GrpoLossResult {
  /** The aggregated GRPO loss (SPEC §2), KL term included when beta > 0. */
  loss: number;
  /** [B, T] d loss / d logp: exact for SPEC §2, zero where clipped or masked. */
  dlogp: Float32Array;
  /** [B] the advantages used (computed, or the ones given). */
  advantages: Float32Array;
  /** Clip fractions, KL and entropy means over the mask. */
  metrics: GrpoMetrics;
}

type Raw = Record<string, unknown>;
interface GrpoNative {
  grpoAdvantages(a: Raw): { numGroups: number; equalRewardGroups: number };
  grpoAdvantagesAsync(a: Raw): Promise<{ numGroups: number; equalRewardGroups: number }>;
  grpoLoss(a: Raw): { loss: number } & GrpoMetrics;
  grpoLossAsync(a: Raw): Promise<{ loss: number } & GrpoMetrics>;
}
const native = () => nativeFunctions<GrpoNative>();
const lengthOf = (x: unknown) => (x instanceof Float32Array ? x.length : 0);
/** B from whatever the caller passed (an array of the wrong type still gets its own error). */
const batchOf = (x: unknown) => {
  const n = (x as { length?: unknown } | undefined)?.length;
  return typeof n === 'number' ? n : 0;
};

function advArgs(args: GrpoAdvantagesArgs) {
  const advantages = args.advantages ?? new Float32Array(lengthOf(args.rewards));
  return { raw: { ...args, advantages }, advantages };
}

/** Group-relative advantages from rewards and group ids. */
export function grpoAdvantages(args: GrpoAdvantagesArgs): GrpoAdvantagesResult {
  const { raw, advantages } = advArgs(args);
  return { advantages, ...native().grpoAdvantages(raw) };
}
export async function grpoAdvantagesAsync(args: GrpoAdvantagesArgs): Promise<GrpoAdvantagesResult> {
  const { raw, advantages } = advArgs(args);
  return { advantages, ...(await native().grpoAdvantagesAsync(raw)) };
}

function lossArgs(args: GrpoLossArgs) {
  const batch = args.batch ?? batchOf(args.rewards ?? args.advantages);
  const dlogp = args.dlogp ?? new Float32Array(lengthOf(args.logp));
  const advantages = args.rewards !== undefined ? new Float32Array(batch) : (args.advantages as Float32Array);
  const raw: Raw = { ...args, batch, dlogp };
  if (args.rewards !== undefined) raw.advantagesOut = advantages;
  return { raw, dlogp, advantages };
}

function split(r: { loss: number } & GrpoMetrics, dlogp: Float32Array, advantages: Float32Array): GrpoLossResult {
  const { loss, ...metrics } = r;
  return { loss, dlogp, advantages, metrics };
}

/** GRPO loss, d loss / d logp, the advantages and the metrics of one batch. */
export function grpoLoss(args: GrpoLossArgs): GrpoLossResult {
  const { raw, dlogp, advantages } = lossArgs(args);
  return split(native().grpoLoss(raw), dlogp, advantages);
}
export async function grpoLossAsync(args: GrpoLossArgs): Promise<GrpoLossResult> {
  const { raw, dlogp, advantages } = lossArgs(args);
  return split(await native().grpoLossAsync(raw), dlogp, advantages);
}
