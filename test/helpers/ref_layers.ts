// Float64 references for the layer kernels (layernorm, softmax, attention, AdamW, grad clip),
// written from the formulas in SPEC §1 / the torch docs, independent of the native code.

type Arr = ArrayLike<number>;

export function layerNormRef(x: Arr, w: Arr, b: Arr, N: number, C: number, eps = 1e-5) {
  const out = new Float64Array(N * C);
  const mean = new Float64Array(N);
  const rstd = new Float64Array(N);
  for (let r = 0; r < N; r++) {
    let s = 0;
    for (let i = 0; i < C; i++) s += x[r * C + i];
    const m = s / C;
    let v = 0;
    for (let i = 0; i < C; i++) v += (x[r * C + i] - m) ** 2;
    const rs = 1 / Math.sqrt(v / C + eps);
    for (let i = 0; i < C; i++) out[r * C + i] = (x[r * C + i] - m) * rs * w[i] + b[i];
    mean[r] = m;
    rstd[r] = rs;
  }
  return { out, mean, rstd };
}

export function softmaxRef(x: Arr, N: number, C: number, scale = 1): Float64Array {
  const out = new Float64Array(N * C);
  for (let r = 0; r < N; r++) {
    let mx = -Infinity;
    for (let i = 0; i < C; i++) mx = Math.max(mx, scale * x[r * C + i]);
    if (mx === -Infinity) continue;
    let s = 0;
    for (let i = 0; i < C; i++) s += Math.exp(scale * x[r * C + i] - mx);
    for (let i = 0; i < C; i++) out[r * C + i] = Math.exp(scale * x[r * C + i] - mx) / s;
  }
  return out;
}

/**
 * Causal attention over separate q [B,Tq,C], k/v [B,Tk,C] (row stride C), with the queries being the
 * last Tq of Tk positions; mask [B,Tk] (nonzero = valid). Returns out [B,Tq,C] and lse [B,H,Tq].
 */
export function attentionSplitRef(q: Arr, k: Arr, v: Arr, B: number, Tq: number, Tk: number, C: number, H: number, mask?: Arr) {
  const hd = C / H;
  const scale = 1 / Math.sqrt(hd);
  const out = new Float64Array(B * Tq * C);
  const lse = new Float64Array(B * H * Tq);
  const s = new Float64Array(Tk);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < Tq; i++) {
        const last = i + Tk - Tq;
        let mx = -Infinity;
        for (let j = 0; j <= last; j++) {
          if (mask && mask[b * Tk + j] === 0) {
            s[j] = -Infinity;
            continue;
          }
          let d = 0;
          for (let e = 0; e < hd; e++) d += q[(b * Tq + i) * C + h * hd + e] * k[(b * Tk + j) * C + h * hd + e];
          s[j] = d * scale;
          mx = Math.max(mx, s[j]);
        }
        if (mx === -Infinity) {
          lse[(b * H + h) * Tq + i] = -Infinity;
          continue;
        }
        let sum = 0;
        for (let j = 0; j <= last; j++) sum += Math.exp(s[j] - mx);
        lse[(b * H + h) * Tq + i] = mx + Math.log(sum);
        for (let j = 0; j <= last; j++) {
          const p = Math.exp(s[j] - mx) / sum;
          if (p === 0) continue;
          for (let e = 0; e < hd; e++) out[(b * Tq + i) * C + h * hd + e] += p * v[(b * Tk + j) * C + h * hd + e];
        }
      }
  return { out, lse };
}

/** Splits qkv [B,T,3C] into q, k, v [B,T,C]. */
export function splitQkv(qkv: Arr, B: number, T: number, C: number) {
  const q = new Float64Array(B * T * C);
  const k = new Float64Array(B * T * C);
  const v = new Float64Array(B * T * C);
  for (let r = 0; r < B * T; r++)
    for (let c = 0; c < C; c++) {
      q[r * C + c] = qkv[r * 3 * C + c];
      k[r * C + c] = qkv[r * 3 * C + C + c];
      v[r * C + c] = qkv[r * 3 * C + 2 * C + c];
    }
  return { q, k, v };
}

/** Causal self-attention over c_attn's qkv [B,T,3C]. */
export function attentionRef(qkv: Arr, B: number, T: number, C: number, H: number, mask?: Arr) {
  const { q, k, v } = splitQkv(qkv, B, T, C);
  return attentionSplitRef(q, k, v, B, T, T, C, H, mask);
}

export interface AdamWHp {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/** One AdamW step in float64 (torch.optim.AdamW formula), in place on p, m, v; step is 1-based. */
export function adamwRef(p: Float64Array, g: Arr, m: Float64Array, v: Float64Array, step: number, hp: AdamWHp): void {
  const bc1 = 1 - hp.beta1 ** step;
  const bc2 = 1 - hp.beta2 ** step;
  for (let i = 0; i < p.length; i++) {
    p[i] *= 1 - hp.lr * hp.weightDecay;
    m[i] = hp.beta1 * m[i] + (1 - hp.beta1) * g[i];
    v[i] = hp.beta2 * v[i] + (1 - hp.beta2) * g[i] * g[i];
    const mhat = m[i] / bc1;
    const vhat = v[i] / bc2;
    p[i] -= (hp.lr * mhat) / (Math.sqrt(vhat) + hp.eps);
  }
}

export function globalNormRef(grads: Arr[]): number {
  let s = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) s += g[i] * g[i];
  return Math.sqrt(s);
}

/** Cheap deterministic pseudo-random data in (-scale, scale) for large arrays (an integer hash). */
export function fastData(n: number, seed: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  let s = (seed * 2654435761) >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = ((s >>> 8) / 8388608 - 1) * scale;
  }
  return a;
}
