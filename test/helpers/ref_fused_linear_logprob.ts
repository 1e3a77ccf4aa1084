// Unfused float64 reference of SPEC §1 log-probs and entropies: full logits, then log_softmax, gather,
// entropy, and the analytic gradients of  L = sum_i dlogp_i logp_i + dentropy_i H_i.
import { Rng } from './random';

export interface LogprobRef {
  logp: Float64Array;
  entropy: Float64Array;
  lse: Float64Array;
}

/** Forward in float64 (ignored rows, target < 0, give 0). */
export function logprobRef(
  h: ArrayLike<number>, W: ArrayLike<number>, targets: ArrayLike<number>,
  N: number, d: number, V: number, tau = 1,
): LogprobRef & { p: Float64Array[]; z: Float64Array[] } {
  const logp = new Float64Array(N), entropy = new Float64Array(N), lse = new Float64Array(N);
  const ps: Float64Array[] = [], zs: Float64Array[] = [];
  for (let i = 0; i < N; i++) {
    const z = new Float64Array(V), p = new Float64Array(V);
    zs.push(z);
    ps.push(p);
    if (targets[i] < 0) continue;
    let m = -Infinity;
    for (let k = 0; k < V; k++) {
      let acc = 0;
      for (let j = 0; j < d; j++) acc += h[i * d + j] * W[k * d + j];
      z[k] = acc / tau;
      m = Math.max(m, z[k]);
    }
    let s = 0;
    for (let k = 0; k < V; k++) s += Math.exp(z[k] - m);
    const l = m + Math.log(s);
    let H = 0;
    for (let k = 0; k < V; k++) {
      p[k] = Math.exp(z[k] - l);
      H += p[k] * (l - z[k]);
    }
    lse[i] = l;
    entropy[i] = H;
    logp[i] = z[targets[i]] - l;
  }
  return { logp, entropy, lse, p: ps, z: zs };
}

/** Scalar loss sum(dlogp * logp) + sum(dentropy * H), for finite differences. */
export function lossRef(
  h: ArrayLike<number>, W: ArrayLike<number>, targets: ArrayLike<number>, N: number, d: number, V: number,
  tau: number, dlogp: ArrayLike<number> | null, dentropy: ArrayLike<number> | null,
): number {
  const r = logprobRef(h, W, targets, N, d, V, tau);
  let L = 0;
  for (let i = 0; i < N; i++) L += (dlogp ? dlogp[i] * r.logp[i] : 0) + (dentropy ? dentropy[i] * r.entropy[i] : 0);
  return L;
}

/** Analytic gradients in float64: dz_k = g (1[k=t] - p_k) - c p_k (z_k - E_p z), dlogits = dz / tau. */
export function gradRef(
  h: ArrayLike<number>, W: ArrayLike<number>, targets: ArrayLike<number>, N: number, d: number, V: number,
  tau: number, dlogp: ArrayLike<number> | null, dentropy: ArrayLike<number> | null,
): { dh: Float64Array; dW: Float64Array } {
  const r = logprobRef(h, W, targets, N, d, V, tau);
  const dh = new Float64Array(N * d), dW = new Float64Array(V * d);
  for (let i = 0; i < N; i++) {
    if (targets[i] < 0) continue;
    const p = r.p[i], z = r.z[i];
    const g = dlogp ? dlogp[i] : 0, c = dentropy ? dentropy[i] : 0;
    let Ez = 0;
    for (let k = 0; k < V; k++) Ez += p[k] * z[k];
    for (let k = 0; k < V; k++) {
      const dl = (g * ((k === targets[i] ? 1 : 0) - p[k]) - c * p[k] * (z[k] - Ez)) / tau;
      for (let j = 0; j < d; j++) {
        dh[i * d + j] += dl * W[k * d + j];
        dW[k * d + j] += dl * h[i * d + j];
      }
    }
  }
  return { dh, dW };
}

export interface FusedCase {
  N: number;
  d: number;
  V: number;
  tau: number;
  /** Fraction of rows whose target is -1 (ignored). */
  ignored: number;
  /** Standard deviation of h (W has 1): larger gives peaked distributions. */
  hScale: number;
}

/** Seeded inputs of one case: h, W, targets and the cotangents dlogp, dentropy. */
export function makeCase(c: FusedCase, seed: number) {
  const rng = new Rng(seed);
  const h = rng.f32(c.N * c.d, c.hScale);
  const W = rng.f32(c.V * c.d);
  const targets = rng.i32(c.N, 0, c.V);
  for (let i = 0; i < c.N; i++) if (rng.next() < c.ignored) targets[i] = -1;
  return { h, W, targets, dlogp: rng.f32(c.N), dentropy: rng.f32(c.N), N: c.N, d: c.d, V: c.V, temperature: c.tau };
}
