// SFT cross-entropy over logits [N, V] with targets [N] (a negative target ignores its row):
// loss = mean (or sum) over kept rows of -log_softmax(logits / temperature)[target].
import { nativeFunctions } from './runtime';

/** 'mean' over non-ignored rows (0 when there are none), or 'sum'. */
export type CrossEntropyReduction = 'mean' | 'sum';

export interface CrossEntropyArgs {
  /** [N, V] row-major. */
  logits: Float32Array;
  /** [N] ids < vocab; negative ids (-1, -100) are ignored. */
  targets: Int32Array;
  /** V, the row length of `logits`. */
  vocab: number;
  /** Default 1. */
  temperature?: number;
  /** Default 'mean'. */
  reduction?: CrossEntropyReduction;
  /** Also compute d loss / d logits (scaled by `dloss`) in the same call. Default false. */
  withGrad?: boolean;
  /** Upstream gradient of the loss; default 1. */
  dloss?: number;
  /** [N, V] gradient buffer (implies withGrad); allocated when omitted and withGrad. */
  dlogits?: Float32Array;
  /** Add the gradient into `dlogits` instead of overwriting it. */
  accumulate?: boolean;
  /** [N] optional output: per-row logsumexp, for crossEntropyBackward. */
  lse?: Float32Array;
  /** Run the plain scalar reference instead of the optimized kernel (tests, benchmarks); default false. */
  reference?: boolean;
}

export interface CrossEntropyResult {
  /** The loss: mean (or sum, per `reduction`) over the kept rows of -log_softmax(logits / temperature)[target]. */
  loss: number;
  /** Rows with a non-negative target. */
  count: number;
  /** d loss / d logits when requested, else null. */
  dlogits: Float32Array | null;
}

export interface CrossEntropyBackwardArgs {
  /** The forward's logits [N, V], row-major. */
  logits: Float32Array;
  /** The forward's targets [N]; negative ids are ignored. */
  targets: Int32Array;
  /** V, the row length of `logits`. */
  vocab: number;
  /** The forward's temperature; default 1. */
  temperature?: number;
  /** The forward's reduction; default 'mean'. */
  reduction?: CrossEntropyReduction;
  /** Default 1. */
  dloss?: number;
  /** [N] from crossEntropy; recomputed when omitted. */
  lse?: Float32Array;
  /** [N, V]; allocated when omitted. */
  dlogits?: Float32Array;
  /** Add the gradient into `dlogits` instead of overwriting it (default false). */
  accumulate?: boolean;
  /** Run the plain scalar reference instead of the optimized kernel (tests, benchmarks); default false. */
  reference?: boolean;
}

type Raw = Record<string, unknown>;
interface CrossEntropyNative {
  crossEntropy(a: Raw): { loss: number; count: number };
  crossEntropyAsync(a: Raw): Promise<{ loss: number; count: number }>;
  crossEntropyBackward(a: Raw): void;
  crossEntropyBackwardAsync(a: Raw): Promise<void>;
}
const native = () => nativeFunctions<CrossEntropyNative>();
const size = (a: { logits?: unknown }) => (a.logits instanceof Float32Array ? a.logits.length : 0);

function fwdArgs(args: CrossEntropyArgs) {
  const dlogits = args.dlogits ?? (args.withGrad ? new Float32Array(size(args)) : undefined);
  return { raw: { ...args, dlogits } as Raw, dlogits: dlogits ?? null };
}

/** Cross-entropy loss (and optionally its gradient). */
export function crossEntropy(args: CrossEntropyArgs): CrossEntropyResult {
  const { raw, dlogits } = fwdArgs(args);
  return { ...native().crossEntropy(raw), dlogits };
}
export async function crossEntropyAsync(args: CrossEntropyArgs): Promise<CrossEntropyResult> {
  const { raw, dlogits } = fwdArgs(args);
  return { ...(await native().crossEntropyAsync(raw)), dlogits };
}

/** d loss / d logits of crossEntropy. */
export function crossEntropyBackward(args: CrossEntropyBackwardArgs): Float32Array {
  const dlogits = args.dlogits ?? new Float32Array(size(args));
  native().crossEntropyBackward({ ...args, dlogits });
  return dlogits;
}
export async function crossEntropyBackwardAsync(args: CrossEntropyBackwardArgs): Promise<Float32Array> {
  const dlogits = args.dlogits ?? new Float32Array(size(args));
  await native().crossEntropyBackwardAsync({ ...args, dlogits });
  return dlogits;
}
