// Float64 reference of SPEC §2 (GRPO), written straight from the text.

export type Scale = 'std' | 'none';
export type Kl = 'k1' | 'k2' | 'k3';
export type Agg = 'token-mean' | 'seq-mean-token-mean' | 'seq-mean-token-sum' | 'seq-mean-token-sum-norm';

export function advantagesRef(r: ArrayLike<number>, groups: ArrayLike<number>, scale: Scale = 'std'):
  { adv: Float64Array; numGroups: number; equalRewardGroups: number } {
  const B = r.length;
  const members = new Map<number, number[]>();
  for (let i = 0; i < B; i++) {
    const list = members.get(groups[i]) ?? [];
    list.push(i);
    members.set(groups[i], list);
  }
  const adv = new Float64Array(B);
  let equalRewardGroups = 0;
  for (const idx of members.values()) {
    const vals = idx.map((i) => r[i]);
    if (vals.every((v) => v === vals[0])) equalRewardGroups++;
    if (idx.length === 1) continue; // A = 0
    const mean = vals.reduce((s, v) => s + v, 0) / vals.length;
    const std = Math.sqrt(vals.reduce((s, v) => s + (v - mean) ** 2, 0) / (vals.length - 1));
    for (const i of idx) adv[i] = scale === 'std' ? (r[i] - mean) / (std + 1e-6) : r[i] - mean;
  }
  return { adv, numGroups: members.size, equalRewardGroups };
}

export interface LossOpts {
  epsLow: number;
  epsHigh: number;
  dualClip: number;
  beta: number;
  kl: Kl;
  lossAgg: Agg;
  tNorm?: number;
}

export interface LossIn {
  logp: ArrayLike<number>;
  oldLogp: ArrayLike<number>;
  refLogp?: ArrayLike<number>;
  mask: ArrayLike<number>;
  adv: ArrayLike<number>;
  entropy?: ArrayLike<number>;
  B: number;
  T: number;
}

const klOf = (kind: Kl, d: number) => (kind === 'k1' ? -d : kind === 'k2' ? (d * d) / 2 : Math.exp(d) - d - 1);

/** Per-token loss l = L + beta k (SPEC §2). */
export function tokenLoss(lp: number, old: number, ref: number | undefined, A: number, o: LossOpts): number {
  const rho = Math.exp(lp - old);
  const clip = Math.min(Math.max(rho, 1 - o.epsLow), 1 + o.epsHigh);
  let L = Math.max(-A * rho, -A * clip);
  if (o.dualClip > 1 && A < 0) L = Math.min(L, -o.dualClip * A);
  return L + (ref === undefined ? 0 : o.beta * klOf(o.kl, ref - lp));
}

/** The aggregated loss as a function of logp (so that finite differences give dlogp). */
export function lossRef(x: LossIn, o: LossOpts, logp: ArrayLike<number> = x.logp): number {
  const { B, T, mask } = x;
  const rowS = new Float64Array(B);
  const rowW = new Float64Array(B);
  for (let i = 0; i < B; i++) {
    for (let t = 0; t < T; t++) {
      const j = i * T + t;
      rowW[i] += mask[j];
      if (mask[j] === 0) continue;
      rowS[i] += tokenLoss(logp[j], x.oldLogp[j], x.refLogp?.[j], x.adv[i], o) * mask[j];
    }
  }
  const sum = (a: Float64Array) => a.reduce((s, v) => s + v, 0);
  switch (o.lossAgg) {
    case 'token-mean': {
      const W = sum(rowW);
      return W > 0 ? sum(rowS) / W : 0;
    }
    case 'seq-mean-token-mean': {
      let s = 0;
      let n = 0;
      for (let i = 0; i < B; i++) if (rowW[i] > 0) (s += rowS[i] / rowW[i]), n++;
      return n > 0 ? s / n : 0;
    }
    case 'seq-mean-token-sum':
      return sum(rowS) / B;
    case 'seq-mean-token-sum-norm':
      return sum(rowS) / (B * (o.tNorm ?? T));
  }
}

export interface MetricsRef {
  clipFracLow: number;
  clipFracHigh: number;
  dualClipFrac: number;
  approxKl: number;
  kl: number | null;
  entropy: number | null;
  maskSum: number;
}

export function metricsRef(x: LossIn, o: LossOpts): MetricsRef {
  let W = 0, low = 0, high = 0, dual = 0, akl = 0, kl = 0, ent = 0;
  for (let i = 0; i < x.B; i++) {
    const A = x.adv[i];
    for (let t = 0; t < x.T; t++) {
      const j = i * x.T + t;
      const M = x.mask[j];
      if (M === 0) continue;
      W += M;
      const rho = Math.exp(x.logp[j] - x.oldLogp[j]);
      if (rho < 1 - o.epsLow && A < 0) low += M;
      if (rho > 1 + o.epsHigh && A > 0) high += M;
      const L = Math.max(-A * rho, -A * Math.min(Math.max(rho, 1 - o.epsLow), 1 + o.epsHigh));
      if (o.dualClip > 1 && A < 0 && L > -o.dualClip * A) dual += M;
      akl += M * (x.logp[j] - x.oldLogp[j]) ** 2;
      if (x.refLogp) kl += M * klOf(o.kl, x.refLogp[j] - x.logp[j]);
      if (x.entropy) ent += M * x.entropy[j];
    }
  }
  const f = (v: number) => (W > 0 ? v / W : 0);
  return {
    clipFracLow: f(low),
    clipFracHigh: f(high),
    dualClipFrac: f(dual),
    approxKl: 0.5 * f(akl),
    kl: x.refLogp ? f(kl) : null,
    entropy: x.entropy ? f(ent) : null,
    maskSum: W,
  };
}
