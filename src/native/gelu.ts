// GELU (tanh approximation, SPEC §1) forward and backward.
import { nativeFunctions } from './runtime';

export interface GeluArgs {
  /** Values to transform (any length). */
  input: Float32Array;
  /** Written with gelu(input); allocated when omitted. */
  out?: Float32Array;
  /** Run the plain scalar reference (native/cpu `*_ref`, double inside) instead of the optimized kernel; default false. */
  reference?: boolean;
}
export interface GeluBackwardArgs {
  /** The forward's input. */
  input: Float32Array;
  /** dL/dout, the same length as `input`. */
  dout: Float32Array;
  /** Receives (or, with accumulate, is incremented by) gelu'(input) * dout; allocated when omitted. */
  dinput?: Float32Array;
  /** Add into dinput instead of overwriting it (default false). */
  accumulate?: boolean;
  /** Run the plain scalar reference (native/cpu `*_ref`, double inside) instead of the optimized kernel; default false. */
  reference?: boolean;
}

interface GeluNative {
  gelu(a: GeluArgs & { out: Float32Array }): void;
  geluAsync(a: GeluArgs & { out: Float32Array }): Promise<void>;
  geluBackward(a: GeluBackwardArgs & { dinput: Float32Array }): void;
  geluBackwardAsync(a: GeluBackwardArgs & { dinput: Float32Array }): Promise<void>;
}
const native = () => nativeFunctions<GeluNative>();
const len = (a: { input?: unknown }) => (a.input instanceof Float32Array ? a.input.length : 0);

export function gelu(args: GeluArgs): Float32Array {
  const out = args.out ?? new Float32Array(len(args));
  native().gelu({ ...args, out });
  return out;
}
export async function geluAsync(args: GeluArgs): Promise<Float32Array> {
  const out = args.out ?? new Float32Array(len(args));
  await native().geluAsync({ ...args, out });
  return out;
}
export function geluBackward(args: GeluBackwardArgs): Float32Array {
  const dinput = args.dinput ?? new Float32Array(len(args));
  native().geluBackward({ ...args, dinput });
  return dinput;
}
export async function geluBackwardAsync(args: GeluBackwardArgs): Promise<Float32Array> {
  const dinput = args.dinput ?? new Float32Array(len(args));
  await native().geluBackwardAsync({ ...args, dinput });
  return dinput;
}
