// Float64 references for log-prob / entropy / log-softmax / cross-entropy (SPEC §1).

/** Row statistics of z = x / tau in float64: logsumexp and entropy. */
export function rowStats(x: ArrayLike<number>, off: number, V: number, tau: number): { lse: number; entropy: number } {
  let m = -Infinity;
  for (let k = 0; k < V; k++) m = Math.max(m, x[off + k] / tau);
  let s = 0;
  let w = 0;
  for (let k = 0; k < V; k++) {
    const t = x[off + k] / tau - m;
    const e = Math.exp(t);
    s += e;
    if (e > 0) w += e * t;
  }
  return { lse: m + Math.log(s), entropy: Math.log(s) - w / s };
}

export interface LogprobRef {
  logp: Float64Array;
  entropy: Float64Array;
  lse: Float64Array;
}

export function logprobRef(logits: ArrayLike<number>, targets: ArrayLike<number>, V: number, tau = 1): LogprobRef {
  const N = targets.length;
  const out = { logp: new Float64Array(N), entropy: new Float64Array(N), lse: new Float64Array(N) };
  for (let r = 0; r < N; r++) {
    if (targets[r] < 0) continue;
    const st = rowStats(logits, r * V, V, tau);
    out.logp[r] = logits[r * V + targets[r]] / tau - st.lse;
    out.entropy[r] = st.entropy;
    out.lse[r] = st.lse;
  }
  return out;
}

/** sum_r (a_r logp_r + b_r entropy_r): a scalar whose gradient w.r.t. logits is logprobBackward's. */
export function logprobObjective(logits: ArrayLike<number>, targets: ArrayLike<number>, V: number, tau: number,
  a: ArrayLike<number> | null, b: ArrayLike<number> | null): number {
  const ref = logprobRef(logits, targets, V, tau);
  let s = 0;
  for (let r = 0; r < targets.length; r++) s += (a ? a[r] * ref.logp[r] : 0) + (b ? b[r] * ref.entropy[r] : 0);
  return s;
}

/** Analytic float64 gradient of logprobObjective. */
export function logprobGradRef(logits: ArrayLike<number>, targets: ArrayLike<number>, V: number, tau: number,
  a: ArrayLike<number> | null, b: ArrayLike<number> | null): Float64Array {
  const N = targets.length;
  const g = new Float64Array(N * V);
  for (let r = 0; r < N; r++) {
    const t = targets[r];
    if (t < 0) continue;
    const st = rowStats(logits, r * V, V, tau);
    const ar = a ? a[r] : 0;
    const br = b ? b[r] : 0;
    for (let k = 0; k < V; k++) {
      const u = logits[r * V + k] / tau - st.lse;
      const p = Math.exp(u);
      g[r * V + k] = (ar * ((k === t ? 1 : 0) - p) - (p > 0 ? br * p * (u + st.entropy) : 0)) / tau;
    }
  }
  return g;
}

export function logSoftmaxRef(logits: ArrayLike<number>, V: number, tau = 1): Float64Array {
  const N = logits.length / V;
  const out = new Float64Array(logits.length);
  for (let r = 0; r < N; r++) {
    const { lse } = rowStats(logits, r * V, V, tau);
    for (let k = 0; k < V; k++) out[r * V + k] = logits[r * V + k] / tau - lse;
  }
  return out;
}

export function crossEntropyRef(logits: ArrayLike<number>, targets: ArrayLike<number>, V: number, tau = 1,
  reduction: 'mean' | 'sum' = 'mean'): { loss: number; count: number } {
  const { logp } = logprobRef(logits, targets, V, tau);
  let s = 0;
  let count = 0;
  for (let r = 0; r < targets.length; r++) {
    if (targets[r] < 0) continue;
    s -= logp[r];
    count++;
  }
  return { loss: reduction === 'sum' ? s : count > 0 ? s / count : 0, count };
}
