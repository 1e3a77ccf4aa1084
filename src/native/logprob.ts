// Token log-probabilities and entropies from logits (SPEC §1), their backward, and log-softmax.
// Rows of `logits` [N, V] (row-major) with `targets` [N]; z = logits / temperature,
// logp = z[t] - logsumexp(z), entropy = -sum p log p. A negative target ignores its row
// (logp = entropy = lse = 0, no gradient).
import { nativeFunctions } from './runtime';

export interface LogprobArgs {
  /** [N, V] row-major. -inf entries (masked vocabulary) are allowed. */
  logits: Float32Array;
  /** [N] token ids < vocab; a negative id (-1, -100) ignores its row. */
  targets: Int32Array;
  /** V, the row length of `logits`. */
  vocab: number;
  /** Sampling temperature tau in [1e-6, 1e6]; default 1. */
  temperature?: number;
  /** Also compute the entropy of each row (default false). */
  withEntropy?: boolean;
  /** [N] output buffers; allocated when omitted (`entropy` only with `withEntropy`). */
  logp?: Float32Array;
  /** [N] receives the entropies (implies `withEntropy`); allocated when omitted. */
  entropy?: Float32Array;
  /** [N] receives logsumexp(logits / tau) per row; allocated when omitted. */
  lse?: Float32Array;
  /** Run the plain scalar reference instead of the optimized kernel (tests, benchmarks). */
  reference?: boolean;
}

export interface LogprobResult {
  /** [N] log p(target). */
  logp: Float32Array;
  /** [N] entropy of each row, or null unless `withEntropy` (or an `entropy` buffer) was given. */
  entropy: Float32Array | null;
  /** [N] logsumexp(logits / tau) of each row: pass it to logprobBackward to save a pass. */
  lse: Float32Array;
}

export interface LogprobBackwardArgs {
  /** The forward's logits [N, V], row-major. */
  logits: Float32Array;
  /** The forward's targets [N]; a negative id ignores its row. */
  targets: Int32Array;
  /** V, the row length of `logits`. */
  vocab: number;
  /** The temperature of the forward; default 1. */
  temperature?: number;
  /** [N] from logprob(); recomputed when omitted. */
  lse?: Float32Array;
  /** [N] d loss / d logp; omitted means 0. */
  dlogp?: Float32Array;
  /** [N] d loss / d entropy; omitted means 0 (and saves a pass over the logits). */
  dentropy?: Float32Array;
  /** [N, V] receives d loss / d logits (or is incremented with `accumulate`); allocated when omitted. */
  dlogits?: Float32Array;
  /** Add into `dlogits` instead of overwriting it (default false). */
  accumulate?: boolean;
  /** Run the plain scalar reference instead of the optimized kernel (tests, benchmarks). */
  reference?: boolean;
}

export interface LogSoftmaxArgs {
  /** [N, V] row-major. */
  logits: Float32Array;
  /** V, the row length of `logits`. */
  vocab: number;
  /** Default 1. */
  temperature?: number;
  /** [N, V] receives log_softmax(logits / tau) per row; may be `logits` itself; allocated when omitted. */
  out?: Float32Array;
  /** Run the plain scalar reference instead of the optimized kernel (tests, benchmarks). */
  reference?: boolean;
}

type Raw<T> = T & Record<string, unknown>;
interface LogprobNative {
  logprob(a: Raw<LogprobArgs>): void;
  logprobAsync(a: Raw<LogprobArgs>): Promise<void>;
  logprobBackward(a: Raw<LogprobBackwardArgs>): void;
  logprobBackwardAsync(a: Raw<LogprobBackwardArgs>): Promise<void>;
  logSoftmax(a: Raw<LogSoftmaxArgs>): void;
  logSoftmaxAsync(a: Raw<LogSoftmaxArgs>): Promise<void>;
}
const native = () => nativeFunctions<LogprobNative>();
const rows = (a: { targets?: unknown }) => (a.targets instanceof Int32Array ? a.targets.length : 0);
const size = (a: { logits?: unknown }) => (a.logits instanceof Float32Array ? a.logits.length : 0);

function forwardArgs(args: LogprobArgs) {
  const n = rows(args);
  const logp = args.logp ?? new Float32Array(n);
  const lse = args.lse ?? new Float32Array(n);
  const entropy = args.entropy ?? (args.withEntropy ? new Float32Array(n) : undefined);
  return { raw: { ...args, logp, lse, entropy }, result: { logp, lse, entropy: entropy ?? null } };
}

/** Log-prob of each target (and optionally the entropy) of each row of logits / temperature. */
export function logprob(args: LogprobArgs): LogprobResult {
  const { raw, result } = forwardArgs(args);
  native().logprob(raw);
  return result;
}
export async function logprobAsync(args: LogprobArgs): Promise<LogprobResult> {
  const { raw, result } = forwardArgs(args);
  await native().logprobAsync(raw);
  return result;
}

/** d loss / d logits from d loss / d logp (and d loss / d entropy). */
export function logprobBackward(args: LogprobBackwardArgs): Float32Array {
  const dlogits = args.dlogits ?? new Float32Array(size(args));
  native().logprobBackward({ ...args, dlogits });
  return dlogits;
}
export async function logprobBackwardAsync(args: LogprobBackwardArgs): Promise<Float32Array> {
  const dlogits = args.dlogits ?? new Float32Array(size(args));
  await native().logprobBackwardAsync({ ...args, dlogits });
  return dlogits;
}

/** Row-wise log_softmax(logits / temperature). */
export function logSoftmax(args: LogSoftmaxArgs): Float32Array {
  const out = args.out ?? new Float32Array(size(args));
  native().logSoftmax({ ...args, out });
  return out;
}
export async function logSoftmaxAsync(args: LogSoftmaxArgs): Promise<Float32Array> {
  const out = args.out ?? new Float32Array(size(args));
  await native().logSoftmaxAsync({ ...args, out });
  return out;
}
