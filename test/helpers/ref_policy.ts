// Float64 reference forward of the SPEC §1 model, written from the SPEC text alone (no shared code
// with the native model): per sequence, every position computed directly, logits materialized.
import { IMAGE_ID } from '../../src/tokenizer';
import type { PolicyConfig } from '../../src/policy';
import type { ViewImage } from '../../src/tools/image';

export type RefParams = Map<string, Float64Array>;

export interface RefSequence {
  tokens: ArrayLike<number>;
  images?: ViewImage[];
  mask?: ArrayLike<number>;
}

function layerNorm(x: Float64Array, w: Float64Array, b: Float64Array): Float64Array {
  const n = x.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += x[i];
  mean /= n;
  let v = 0;
  for (let i = 0; i < n; i++) v += (x[i] - mean) ** 2;
  v /= n;
  const r = 1 / Math.sqrt(v + 1e-5);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = (x[i] - mean) * r * w[i] + b[i];
  return out;
}

/** y = W x + b with W [out, in] (torch Linear). */
function linear(x: Float64Array, W: Float64Array, b: Float64Array | null, out: number): Float64Array {
  const inn = x.length;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = b ? b[o] : 0;
    for (let i = 0; i < inn; i++) s += W[o * inn + i] * x[i];
    y[o] = s;
  }
  return y;
}

const gelu = (x: number): number => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));

/** Input rows of a sequence: embeddings of every expanded position. */
function embed(cfg: PolicyConfig, P: RefParams, seq: RefSequence): Float64Array[] {
  const d = cfg.dModel;
  const G = cfg.imageSize / cfg.patch;
  const wte = P.get('wte.weight')!;
  const wpe = P.get('wpe.weight')!;
  const pw = P.get('patch_embed.weight')!;
  const pb = P.get('patch_embed.bias')!;
  const pp = P.get('patch_pos.weight')!;
  const rows: Float64Array[] = [];
  let img = 0;
  for (let k = 0; k < seq.tokens.length; k++) {
    const id = seq.tokens[k];
    if (id !== IMAGE_ID) {
      rows.push(Float64Array.from({ length: d }, (_, i) => wte[id * d + i]));
      continue;
    }
    const v = seq.images![img++];
    const S = cfg.imageSize;
    for (let j = 0; j < G * G; j++) {
      const py = Math.floor(j / G);
      const px = j % G;
      const flat = new Float64Array(cfg.channels * cfg.patch * cfg.patch);
      for (let c = 0; c < cfg.channels; c++) {
        for (let dy = 0; dy < cfg.patch; dy++) {
          for (let dx = 0; dx < cfg.patch; dx++) {
            const pix = (py * cfg.patch + dy) * S + px * cfg.patch + dx;
            const byte = v.channels === 1 ? v.data[pix] : v.data[pix * 3 + c];
            flat[(c * cfg.patch + dy) * cfg.patch + dx] = (byte / 255) * 2 - 1;
          }
        }
      }
      const e = linear(flat, pw, pb, d);
      for (let i = 0; i < d; i++) e[i] += pp[j * d + i];
      rows.push(e);
    }
  }
  rows.forEach((r, t) => {
    for (let i = 0; i < d; i++) r[i] += wpe[t * d + i];
  });
  return rows;
}

/** Final hidden states (after ln_f) of every expanded position. */
export function refHidden(cfg: PolicyConfig, P: RefParams, seq: RefSequence): Float64Array[] {
  const d = cfg.dModel;
  const H = cfg.nHead;
  const hd = d / H;
  let x = embed(cfg, P, seq);
  const T = x.length;
  for (let l = 0; l < cfg.nLayer; l++) {
    const g = (n: string): Float64Array => P.get(`h.${l}.${n}`)!;
    const qkv = x.map((r) => linear(layerNorm(r, g('ln_1.weight'), g('ln_1.bias')), g('attn.c_attn.weight'), g('attn.c_attn.bias'), 3 * d));
    const att = x.map(() => new Float64Array(d));
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < T; t++) {
        const s = new Float64Array(t + 1);
        let mx = -Infinity;
        for (let u = 0; u <= t; u++) {
          let dot = 0;
          for (let i = 0; i < hd; i++) dot += qkv[t][h * hd + i] * qkv[u][d + h * hd + i];
          s[u] = dot / Math.sqrt(hd);
          mx = Math.max(mx, s[u]);
        }
        let z = 0;
        for (let u = 0; u <= t; u++) z += (s[u] = Math.exp(s[u] - mx));
        for (let u = 0; u <= t; u++) for (let i = 0; i < hd; i++) att[t][h * hd + i] += (s[u] / z) * qkv[u][2 * d + h * hd + i];
      }
    }
    x = x.map((r, t) => {
      const a = linear(att[t], g('attn.c_proj.weight'), g('attn.c_proj.bias'), d);
      const y = r.map((v, i) => v + a[i]);
      const f = linear(layerNorm(y, g('ln_2.weight'), g('ln_2.bias')), g('mlp.c_fc.weight'), g('mlp.c_fc.bias'), 4 * d).map(gelu);
      const m = linear(f, g('mlp.c_proj.weight'), g('mlp.c_proj.bias'), d);
      return y.map((v, i) => v + m[i]);
    });
  }
  return x.map((r) => layerNorm(r, P.get('ln_f.weight')!, P.get('ln_f.bias')!));
}

/** Logits (tied wte) of every expanded position. */
export function refLogits(cfg: PolicyConfig, P: RefParams, seq: RefSequence): Float64Array[] {
  return refHidden(cfg, P, seq).map((h) => linear(h, P.get('wte.weight')!, null, cfg.vocabSize));
}

/** Per token: logp[t] = log_softmax(logits[t-1]/τ)[tokens[t]] and its entropy (0 at t=0, images, unscored). */
export function refLogprob(cfg: PolicyConfig, P: RefParams, seq: RefSequence, tau = 1): { logp: Float64Array; entropy: Float64Array } {
  const logits = refLogits(cfg, P, seq);
  const n = seq.tokens.length;
  const logp = new Float64Array(n);
  const entropy = new Float64Array(n);
  const np = (cfg.imageSize / cfg.patch) ** 2;
  let pos = 0;
  for (let t = 0; t < n; t++) {
    const id = seq.tokens[t];
    if (t > 0 && id !== IMAGE_ID && (!seq.mask || seq.mask[t])) {
      const z = logits[pos - 1].map((v) => v / tau);
      const mx = Math.max(...z);
      let s = 0;
      for (const v of z) s += Math.exp(v - mx);
      const lse = mx + Math.log(s);
      logp[t] = z[id] - lse;
      let h = 0;
      for (const v of z) h -= Math.exp(v - lse) * (v - lse);
      entropy[t] = h;
    }
    pos += id === IMAGE_ID ? np : 1;
  }
  return { logp, entropy };
}

/**
 * The scalar Σ_seq Σ_t wl[t]·logp[t] + we[t]·entropy[t] over a batch, as a function of the parameters:
 * the loss whose finite differences check the policy's backward from dlogp and dentropy.
 */
export function refWeightedLogprobLoss(
  cfg: PolicyConfig,
  batch: RefSequence[],
  wl: number[][],
  we: number[][],
  tau: number,
): (P: RefParams) => number {
  return (P) => {
    let l = 0;
    batch.forEach((s, i) => {
      const r = refLogprob(cfg, P, s, tau);
      for (let t = 0; t < s.tokens.length; t++) l += wl[i][t] * r.logp[t] + we[i][t] * r.entropy[t];
    });
    return l;
  };
}
