// Fused linear + log-softmax + gather (+ entropy) over a tied output head (SPEC §1), forward and
// backward, without ever materializing the N x V logits. See native/cpu/fused_linear_logprob.h.
import { nativeFunctions } from './runtime';

/**
 * Which native implementation runs: the chunked fused kernel, or the plain unfused reference (full
 * logits rows in double; slow, for checking; its backward recomputes lse and entropy itself).
 */
export type FusedLogprobImpl = 'fused' | 'reference';

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
}

export interface FusedLinearLogprobResult {
  logp: Float32Array;
  entropy: Float32Array;
  lse: Float32Array;
}

export interface FusedLinearLogprobBackwardArgs {
  h: Float32Array;
  W: Float32Array;
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
  N: number;
  d: number;
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
}

export interface FusedLinearLogprobGrads {
  dh: Float32Array;
  dW: Float32Array;
}

export interface FusedLinearLogprobWorkspaceArgs {
  N: number;
  d: number;
  V: number;
  /** Thread count to plan for (default: the pool's current size). */
  threads?: number;
  /** Which pass (default 'backward', the larger). */
  pass?: 'forward' | 'backward';
  /** Backward given dentropy but no entropy (it then runs a forward first). Default false. */
  recomputeEntropy?: boolean;
}

type BackwardNative = FusedLinearLogprobBackwardArgs & { dh: Float32Array; dW: Float32Array };
interface FusedNative {
  fusedLinearLogprob(a: FusedLinearLogprobArgs): FusedLinearLogprobResult;
  fusedLinearLogprobAsync(a: FusedLinearLogprobArgs): Promise<FusedLinearLogprobResult>;
  fusedLinearLogprobBackward(a: BackwardNative): void;
  fusedLinearLogprobBackwardAsync(a: BackwardNative): Promise<void>;
  fusedLinearLogprobWorkspaceBytes(a: FusedLinearLogprobWorkspaceArgs): number;
}
const native = () => nativeFunctions<FusedNative>();

// A zeroed output of rows x cols floats when the dims are sane; otherwise undefined, so that the
// native side reports the bad dimension or the missing array by name.
function alloc(rows: unknown, cols: unknown): Float32Array | undefined {
  if (!Number.isSafeInteger(rows) || !Number.isSafeInteger(cols)) return undefined;
  const n = (rows as number) * (cols as number);
  return n >= 0 && n <= 2 ** 31 ? new Float32Array(n) : undefined;
}
const grads = (a: FusedLinearLogprobBackwardArgs) => ({
  ...a,
  dh: a.dh ?? alloc(a.N, a.d),
  dW: a.dW ?? alloc(a.V, a.d),
}) as BackwardNative;

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

/** Peak scratch memory in bytes that one call allocates (never N x V; see the native header). */
export function fusedLinearLogprobWorkspaceBytes(args: FusedLinearLogprobWorkspaceArgs): number {
  return native().fusedLinearLogprobWorkspaceBytes(args);
}
