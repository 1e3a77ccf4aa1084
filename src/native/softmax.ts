// Row softmax with an optional scale: p = softmax(scale * x) over each row of [N, C].
import { nativeFunctions } from './runtime';

export interface SoftmaxArgs {
  /** Rows [N, C]. -Infinity entries get probability 0; an all -Infinity row gives zeros. */
  input: Float32Array;
  /** Rows; inferred as input.length / C when omitted. */
  N?: number;
  /** Row length. */
  C: number;
  /** Multiplies the input before the softmax (> 0, default 1). */
  scale?: number;
  /** Receives the probabilities [N, C]; allocated when omitted. */
  out?: Float32Array;
  /** Run the plain scalar reference (native/cpu `*_ref`, double inside) instead of the optimized kernel; default false. */
  reference?: boolean;
}
export interface SoftmaxBackwardArgs {
  /** The forward's output probabilities [N, C]. */
  probs: Float32Array;
  /** dL/dprobs [N, C]. */
  dout: Float32Array;
  /** Rows; inferred as probs.length / C when omitted. */
  N?: number;
  /** Row length. */
  C: number;
  /** The forward's scale (default 1): dinput = scale * p ⊙ (dout - Σ dout⊙p). */
  scale?: number;
  /** Receives (or, with accumulate, is incremented by) dL/dinput; allocated when omitted. */
  dinput?: Float32Array;
  /** Add into dinput instead of overwriting it (default false). */
  accumulate?: boolean;
  /** Run the plain scalar reference (native/cpu `*_ref`, double inside) instead of the optimized kernel; default false. */
  reference?: boolean;
}

interface SoftmaxNative {
  softmax(a: SoftmaxArgs & { N: number; out: Float32Array }): void;
  softmaxAsync(a: SoftmaxArgs & { N: number; out: Float32Array }): Promise<void>;
  softmaxBackward(a: SoftmaxBackwardArgs & { N: number; dinput: Float32Array }): void;
  softmaxBackwardAsync(a: SoftmaxBackwardArgs & { N: number; dinput: Float32Array }): Promise<void>;
}
const native = () => nativeFunctions<SoftmaxNative>();
const rows = (x: unknown, N: number | undefined, C: number) =>
  N ?? (x instanceof Float32Array && Number.isSafeInteger(C) && C > 0 ? Math.floor(x.length / C) : 0);
const alloc = (N: number, C: number) => new Float32Array(Number.isSafeInteger(N * C) && N * C > 0 ? N * C : 0);

export function softmax(args: SoftmaxArgs): Float32Array {
  const N = rows(args.input, args.N, args.C);
  const out = args.out ?? alloc(N, args.C);
  native().softmax({ ...args, N, out });
  return out;
}
export async function softmaxAsync(args: SoftmaxArgs): Promise<Float32Array> {
  const N = rows(args.input, args.N, args.C);
  const out = args.out ?? alloc(N, args.C);
  await native().softmaxAsync({ ...args, N, out });
  return out;
}
export function softmaxBackward(args: SoftmaxBackwardArgs): Float32Array {
  const N = rows(args.probs, args.N, args.C);
  const dinput = args.dinput ?? alloc(N, args.C);
  native().softmaxBackward({ ...args, N, dinput });
  return dinput;
}
export async function softmaxBackwardAsync(args: SoftmaxBackwardArgs): Promise<Float32Array> {
  const N = rows(args.probs, args.N, args.C);
  const dinput = args.dinput ?? alloc(N, args.C);
  await native().softmaxBackwardAsync({ ...args, N, dinput });
  return dinput;
}
