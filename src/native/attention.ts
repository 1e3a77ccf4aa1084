// Causal multi-head attention (SPEC §1) over GPT-2's fused c_attn output, flash-attention style:
// the forward saves only the per-row log-sum-exp, the backward recomputes the probabilities.
import { nativeFunctions } from './runtime';

export interface AttentionDims {
  /** Batch size. */
  B: number;
  /** Sequence length. */
  T: number;
  /** Model width d (q, k and v each have C columns). */
  C: number;
  /** Number of heads; must divide C. Head h uses columns h*C/H..(h+1)*C/H of q, k and v. */
  H: number;
  /**
   * Key padding mask [B, T] (nonzero = valid key). Query t attends key j iff j <= t and
   * mask[b, j] != 0; a query with no valid key outputs 0 and gets no gradient. Omitted: all valid.
   */
  mask?: Int32Array;
}
export interface AttentionArgs extends AttentionDims {
  /** c_attn output [B, T, 3C]: q at columns [0, C), k at [C, 2C), v at [2C, 3C). */
  qkv: Float32Array;
  /** Receives the attention output [B, T, C] (heads concatenated); allocated when omitted. */
  out?: Float32Array;
  /** Receives log Σ_j exp(q·k_j / sqrt(C/H)) per row [B, H, T] (-Infinity: no valid key); allocated when omitted. */
  lse?: Float32Array;
  /** Run the plain scalar reference (native/cpu `*_ref`, double inside) instead of the optimized kernel; default false. */
  reference?: boolean;
}
export interface AttentionResult {
  /** The attention output [B, T, C] (heads concatenated). */
  out: Float32Array;
  /** log Σ_j exp(q·k_j / sqrt(C/H)) per row [B, H, T] (-Infinity: no valid key); the backward reads it. */
  lse: Float32Array;
}
export interface AttentionBackwardArgs extends AttentionDims {
  /** dL/dout [B, T, C]. */
  dout: Float32Array;
  /** The forward's qkv [B, T, 3C], out [B, T, C] and lse [B, H, T]. */
  qkv: Float32Array;
  /** The forward's out [B, T, C]. */
  out: Float32Array;
  /** The forward's lse [B, H, T]. */
  lse: Float32Array;
  /** Receives (or, with accumulate, is incremented by) dL/dqkv [B, T, 3C]; allocated when omitted. */
  dqkv?: Float32Array;
  /** Add into dqkv instead of overwriting it (default false). */
  accumulate?: boolean;
  /**
   * Run the plain scalar reference (native/cpu `*_ref`, double inside) instead of the optimized kernel;
   * default false. The reference recomputes the probabilities from qkv alone: it does not read `out` or `lse`.
   */
  reference?: boolean;
}
export interface AttentionCachedArgs {
  /** Batch size. */
  B: number;
  /** New queries per sequence: they are the last Tq of Tk positions. */
  Tq: number;
  /** Keys/values in the cache (Tq <= Tk <= capacity). */
  Tk: number;
  /** Rows allocated per sequence in k and v (default Tk). */
  capacity?: number;
  /** Model width (q, k and v each have C columns). */
  C: number;
  /** Number of heads; must divide C. */
  H: number;
  /** Queries [B, Tq, C]. */
  q: Float32Array;
  /** Cached keys and values [B, capacity, C]; rows 0..Tk-1 are used. */
  k: Float32Array;
  /** Cached values [B, capacity, C], laid out as `k`. */
  v: Float32Array;
  /** Key padding mask [B, Tk] (nonzero = valid); omitted: all valid. */
  mask?: Int32Array;
  /** Receives the output [B, Tq, C]; allocated when omitted. */
  out?: Float32Array;
  /** Receives the per-row log-sum-exp [B, H, Tq] when given. */
  lse?: Float32Array;
  /** Run the plain scalar reference (native/cpu `*_ref`, double inside) instead of the optimized kernel; default false. */
  reference?: boolean;
}

interface AttentionNative {
  attention(a: AttentionArgs & AttentionResult): void;
  attentionAsync(a: AttentionArgs & AttentionResult): Promise<void>;
  attentionBackward(a: AttentionBackwardArgs & { dqkv: Float32Array }): void;
  attentionBackwardAsync(a: AttentionBackwardArgs & { dqkv: Float32Array }): Promise<void>;
  attentionCached(a: AttentionCachedArgs & { out: Float32Array }): void;
  attentionCachedAsync(a: AttentionCachedArgs & { out: Float32Array }): Promise<void>;
}
const native = () => nativeFunctions<AttentionNative>();
const alloc = (...dims: number[]) => {
  const n = dims.reduce((p, d) => p * d, 1);
  return new Float32Array(Number.isSafeInteger(n) && n > 0 ? n : 0);
};
const fwd = (a: AttentionArgs) => ({ ...a, out: a.out ?? alloc(a.B, a.T, a.C), lse: a.lse ?? alloc(a.B, a.H, a.T) });
const bwd = (a: AttentionBackwardArgs) => ({ ...a, dqkv: a.dqkv ?? alloc(a.B, a.T, 3, a.C) });
const cached = (a: AttentionCachedArgs) => ({ ...a, out: a.out ?? alloc(a.B, a.Tq, a.C) });

/** Causal attention forward over qkv; returns out [B,T,C] and lse [B,H,T]. */
export function attention(args: AttentionArgs): AttentionResult {
  const a = fwd(args);
  native().attention(a);
  return { out: a.out, lse: a.lse };
}
export async function attentionAsync(args: AttentionArgs): Promise<AttentionResult> {
  const a = fwd(args);
  await native().attentionAsync(a);
  return { out: a.out, lse: a.lse };
}
/** Gradient w.r.t. qkv of the causal attention; returns dqkv [B,T,3C]. */
export function attentionBackward(args: AttentionBackwardArgs): Float32Array {
  const a = bwd(args);
  native().attentionBackward(a);
  return a.dqkv;
}
export async function attentionBackwardAsync(args: AttentionBackwardArgs): Promise<Float32Array> {
  const a = bwd(args);
  await native().attentionBackwardAsync(a);
  return a.dqkv;
}
/** Attention of Tq new queries over Tk cached keys/values (KV-cache decoding); returns out [B,Tq,C]. */
export function attentionCached(args: AttentionCachedArgs): Float32Array {
  const a = cached(args);
  native().attentionCached(a);
  return a.out;
}
export async function attentionCachedAsync(args: AttentionCachedArgs): Promise<Float32Array> {
  const a = cached(args);
  await native().attentionCachedAsync(a);
  return a.out;
}
