// Fused linear + log-softmax + gather (+ entropy) over a tied output head (SPEC §1), forward and
// backward, without ever materializing the N x V logits. See native/cpu/fused_linear_logprob.h.
import { nativeFunctions } from './runtime';

/**
 * Which native implementation runs: the chunked fused kernel, or the plain unfused reference (full
 * logits rows in double; slow, for checking; its backward recomputes lse and entropy itself).
 */
export type FusedLogprobImpl = 'fused' | 'reference';

/**
 * Schedule of the fused kernel: 'rows' splits the rows across threads with full logits rows per block
 * (small vocabularies; private dW partial per thread), 'vocab' splits the vocabulary across threads
 * inside row macro-blocks (large vocabularies). 'auto' (default) picks by size; see fusedLinearLogprobPlan.
 */
export type FusedLogprobSplit = 'auto' | 'rows' | 'vocab';

export interface FusedLinearLogprobArgs {
  /** Hidden states (after ln_f), [N, d] row-major. */
  h: Float32Array;
  /** Output weight (tied wte), [V, d] row-major: logits = h @ W^T. */
  W: Float32Array;
  /** Target id per row, in [0, V); -1 marks an ignored row (logp = entropy = lse = 0, no gradient). */
  targets: Int32Array;
  /** Rows. */
  N: number;
  /** Hidden size. */
  d: number;
  /** Vocabulary size. */
  V: number;
  /** Sampling temperature tau > 0: z = logits / tau (default 1). */
  temperature?: number;
  /** Receives log softmax(z)[target] per row [N]; allocated when omitted. */
  logp?: Float32Array;
  /** Receives the entropy -sum p log p per row [N]; allocated when omitted. */
  entropy?: Float32Array;
  /** Receives logsumexp(z) per row [N] (the backward needs it); allocated when omitted. */
  lse?: Float32Array;
  /** Default 'fused'. */
  impl?: FusedLogprobImpl;
  /** Schedule of the fused kernel (default 'auto'; ignored by the reference). */
  split?: FusedLogprobSplit;
}

export interface FusedLinearLogprobResult {
  /** log softmax(z)[target] per row [N] (0 for ignored rows). */
  logp: Float32Array;
  /** Entropy -sum p log p per row [N] (0 for ignored rows). */
  entropy: Float32Array;
  /** logsumexp(z) per row [N]; pass it to the backward. */
  lse: Float32Array;
}

export interface FusedLinearLogprobBackwardArgs {
  /** The forward's hidden states [N, d], row-major. */
  h: Float32Array;
  /** The forward's output weight [V, d], row-major. */
  W: Float32Array;
  /** The forward's target per row [N]; -1 rows get no gradient. */
  targets: Int32Array;
  /** logsumexp per row [N], from the forward. */
  lse: Float32Array;
  /**
   * Entropy per row [N], from the forward. Used only with `dentropy`; when omitted then, it is
   * recomputed by one more forward sweep.
   */
  entropy?: Float32Array;
  /** d loss / d logp [N]; omitted means zero. */
  dlogp?: Float32Array;
  /** d loss / d entropy [N]; omitted means zero. */
  dentropy?: Float32Array;
  /** Rows. */
  N: number;
  /** Hidden size. */
  d: number;
  /** Vocabulary size. */
  V: number;
  /** Must be the forward's temperature (default 1). */
  temperature?: number;
  /** Receives d loss / d h [N, d] (overwritten, ignored rows 0; see accumulateDh); allocated when omitted. */
  dh?: Float32Array;
  /** Incremented by d loss / d W [V, d] (always accumulates); allocated (zeros) when omitted. */
  dW?: Float32Array;
  /** Add into dh instead of overwriting it (ignored rows are then left untouched). Default false. */
  accumulateDh?: boolean;
  /** Default 'fused'. */
  impl?: FusedLogprobImpl;
  /** Schedule of the fused kernel (default 'auto'; ignored by the reference). */
  split?: FusedLogprobSplit;
}

export interface FusedLinearLogprobGrads {
  /** d loss / d h [N, d]. */
  dh: Float32Array;
  /** d loss / d W [V, d] (accumulated into the given buffer, if any). */
  dW: Float32Array;
}

export interface FusedLinearLogprobWorkspaceArgs {
  /** Rows. */
  N: number;
  /** Hidden size. */
  d: number;
  /** Vocabulary size. */
  V: number;
  /** Thread count to plan for (default: the pool's current size). */
  threads?: number;
  /** Which pass (default 'backward'); 'forwardBackward' is fusedLinearLogprobForwardBackward. */
  pass?: 'forward' | 'backward' | 'forwardBackward';
  /** Backward given dentropy but no entropy (vocab split: it then runs a forward first). Default false. */
  recomputeEntropy?: boolean;
  /** Schedule to plan for (default 'auto'). */
  split?: FusedLogprobSplit;
}

export interface FusedLinearLogprobPlanArgs {
  /** Rows. */
  N: number;
  /** Hidden size. */
  d: number;
  /** Vocabulary size. */
  V: number;
  /** Thread count to plan for (default: the pool's current size). */
  threads?: number;
  /** Default 'auto' (the automatic choice); 'rows' / 'vocab' give that split's tiling. */
  split?: FusedLogprobSplit;
}

export interface FusedLinearLogprobPlan {
  /** The schedule a call with these dims uses. */
  split: 'rows' | 'vocab';
  /** Rows per block (rows split: per thread). */
  rows: number;
  /** Vocabulary columns per tile (V for the rows split). */
  chunk: number;
  /** Threads the schedule uses. */
  threads: number;
  /**
   * Rows per block of the single-sweep fusedLinearLogprobForwardBackward (rows split: = rows; vocab split:
   * min(rows, floor(N / 64) * 8), whose full logits are kept; 0 = it runs forward then backward).
   */
  combinedRows: number;
}

export interface FusedLinearLogprobForwardBackwardArgs {
  /** Hidden states (after ln_f), [N, d] row-major. */
  h: Float32Array;
  /** Output weight (tied wte), [V, d] row-major: logits = h @ W^T. */
  W: Float32Array;
  /** Target id per row, in [0, V); -1 marks an ignored row. */
  targets: Int32Array;
  /** Rows. */
  N: number;
  /** Hidden size. */
  d: number;
  /** Vocabulary size. */
  V: number;
  /** Sampling temperature tau > 0 (default 1). */
  temperature?: number;
  /** d loss / d logp [N], known before the forward (SFT cross-entropy: -1 / count); omitted means zero. */
  dlogp?: Float32Array;
  /** d loss / d entropy [N]; omitted means zero. */
  dentropy?: Float32Array;
  /** Receives log-probs [N]; allocated when omitted. */
  logp?: Float32Array;
  /** Receives entropies [N]; allocated when omitted. */
  entropy?: Float32Array;
  /** Receives logsumexps [N]; allocated when omitted. */
  lse?: Float32Array;
  /** Receives d loss / d h [N, d] (overwritten unless accumulateDh); allocated when omitted. */
  dh?: Float32Array;
  /** Incremented by d loss / d W [V, d]; allocated (zeros) when omitted. */
  dW?: Float32Array;
  /** Add into dh instead of overwriting it (ignored rows are then left untouched). Default false. */
  accumulateDh?: boolean;
  /** Schedule (default 'auto'). */
  split?: FusedLogprobSplit;
}

export type FusedLinearLogprobForwardBackwardResult = FusedLinearLogprobResult & FusedLinearLogprobGrads;

type BackwardNative = FusedLinearLogprobBackwardArgs & { dh: Float32Array; dW: Float32Array };
interface FusedNative {
  fusedLinearLogprob(a: FusedLinearLogprobArgs): FusedLinearLogprobResult;
  fusedLinearLogprobAsync(a: FusedLinearLogprobArgs): Promise<FusedLinearLogprobResult>;
  fusedLinearLogprobBackward(a: BackwardNative): void;
  fusedLinearLogprobBackwardAsync(a: BackwardNative): Promise<void>;
  fusedLinearLogprobForwardBackward(a: FwdBwdNative): FusedLinearLogprobResult;
  fusedLinearLogprobForwardBackwardAsync(a: FwdBwdNative): Promise<FusedLinearLogprobResult>;
  fusedLinearLogprobWorkspaceBytes(a: FusedLinearLogprobWorkspaceArgs): number;
  fusedLinearLogprobPlan(a: FusedLinearLogprobPlanArgs): FusedLinearLogprobPlan;
}
type FwdBwdNative = FusedLinearLogprobForwardBackwardArgs & { dh: Float32Array; dW: Float32Array };
const native = () => nativeFunctions<FusedNative>();

// A zeroed output of rows x cols floats when the dims are sane; otherwise undefined, so that the
// native side reports the bad dimension or the missing array by name.
function alloc(rows: unknown, cols: unknown): Float32Array | undefined {
  if (!Number.isSafeInteger(rows) || !Number.isSafeInteger(cols)) return undefined;
  const n = (rows as number) * (cols as number);
  return n >= 0 && n <= 2 ** 31 ? new Float32Array(n) : undefined;
}
// (a non-object is passed through, so that the native side reports the missing options object)
const grads = <A extends { N: number; d: number; V: number; dh?: Float32Array; dW?: Float32Array }>(a: A) =>
  (typeof a !== 'object' || a === null || Array.isArray(a)
    ? a
    : { ...a, dh: a.dh ?? alloc(a.N, a.d), dW: a.dW ?? alloc(a.V, a.d) }) as A & { dh: Float32Array; dW: Float32Array };

/** Per-row log-probs of the targets, entropies and logsumexps (outputs allocated when omitted). */
export function fusedLinearLogprob(args: FusedLinearLogprobArgs): FusedLinearLogprobResult {
  return native().fusedLinearLogprob(args);
}
export async function fusedLinearLogprobAsync(args: FusedLinearLogprobArgs): Promise<FusedLinearLogprobResult> {
  return native().fusedLinearLogprobAsync(args);
}

/** Gradients of sum(dlogp * logp) + sum(dentropy * entropy) w.r.t. h (dh) and W (dW, accumulated). */
export function fusedLinearLogprobBackward(args: FusedLinearLogprobBackwardArgs): FusedLinearLogprobGrads {
  const a = grads(args);
  native().fusedLinearLogprobBackward(a);
  return { dh: a.dh, dW: a.dW };
}
export async function fusedLinearLogprobBackwardAsync(
  args: FusedLinearLogprobBackwardArgs,
): Promise<FusedLinearLogprobGrads> {
  const a = grads(args);
  await native().fusedLinearLogprobBackwardAsync(a);
  return { dh: a.dh, dW: a.dW };
}

/**
 * Forward and backward in one call, when the upstream gradient is known before the forward (SFT
 * cross-entropy). Same results as fusedLinearLogprob followed by fusedLinearLogprobBackward (bit-identical
 * with the rows split) with one GEMM sweep less (3 instead of 4; vocab split: when N >= 64).
 */
export function fusedLinearLogprobForwardBackward(
  args: FusedLinearLogprobForwardBackwardArgs,
): FusedLinearLogprobForwardBackwardResult {
  const a = grads(args);
  const f = native().fusedLinearLogprobForwardBackward(a);
  return { ...f, dh: a.dh, dW: a.dW };
}
export async function fusedLinearLogprobForwardBackwardAsync(
  args: FusedLinearLogprobForwardBackwardArgs,
): Promise<FusedLinearLogprobForwardBackwardResult> {
  const a = grads(args);
  const f = await native().fusedLinearLogprobForwardBackwardAsync(a);
  return { ...f, dh: a.dh, dW: a.dW };
}

/** The schedule (split, block sizes, threads) a call with these dims uses. */
export function fusedLinearLogprobPlan(args: FusedLinearLogprobPlanArgs): FusedLinearLogprobPlan {
  return native().fusedLinearLogprobPlan(args);
}

/** Peak scratch memory in bytes that one call allocates (never N x V; see the native header). */
export function fusedLinearLogprobWorkspaceBytes(args: FusedLinearLogprobWorkspaceArgs): number {
  return native().fusedLinearLogprobWorkspaceBytes(args);
}
