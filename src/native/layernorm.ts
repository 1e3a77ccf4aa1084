// LayerNorm over the last dimension (SPEC §1), forward and backward. Rows [N, C].
import { nativeFunctions } from './runtime';

export interface LayerNormArgs {
  /** Rows [N, C], row-major. */
  input: Float32Array;
  /** Scale [C]. */
  weight: Float32Array;
  /** Shift [C]. */
  bias: Float32Array;
  /** Number of rows. Inferred as input.length / C when omitted. */
  N?: number;
  /** Row length (channels). */
  C: number;
  /** Added to the (biased) variance; default 1e-5. */
  eps?: number;
  /** Receives the normalized rows [N, C]; allocated when omitted. */
  out?: Float32Array;
  /** Receives the row means [N] (needed by the backward); allocated when omitted. */
  mean?: Float32Array;
  /** Receives the row reciprocal standard deviations 1/sqrt(var+eps) [N]; allocated when omitted. */
  rstd?: Float32Array;
  /** Run the plain scalar reference (native/cpu `*_ref`, double inside) instead of the optimized kernel; default false. */
  reference?: boolean;
}
export interface LayerNormResult {
  /** The normalized rows [N, C]. */
  out: Float32Array;
  /** Row means [N]. */
  mean: Float32Array;
  /** Row reciprocal standard deviations 1/sqrt(var+eps) [N]. */
  rstd: Float32Array;
}
export interface LayerNormBackwardArgs {
  /** Gradient of the loss w.r.t. the forward's out [N, C]. */
  dout: Float32Array;
  /** The forward's input [N, C]. */
  input: Float32Array;
  /** The forward's scale [C]. */
  weight: Float32Array;
  /** The forward's saved mean [N] and rstd [N]. */
  mean: Float32Array;
  /** The forward's saved rstd [N]. */
  rstd: Float32Array;
  /** Rows; inferred as input.length / C when omitted. */
  N?: number;
  /** Row length (channels). */
  C: number;
  /** Receives (or, with accumulate, is incremented by) dL/dinput [N, C]; allocated when omitted. */
  dinput?: Float32Array;
  /** dL/dweight [C] is always ADDED here (gradient accumulation); zeros allocated when omitted. */
  dweight?: Float32Array;
  /** dL/dbias [C] is always ADDED here (gradient accumulation); zeros allocated when omitted. */
  dbias?: Float32Array;
  /** Add into dinput instead of overwriting it (default false). */
  accumulate?: boolean;
  /** Run the plain scalar reference (native/cpu `*_ref`, double inside) instead of the optimized kernel; default false. */
  reference?: boolean;
}
export interface LayerNormBackwardResult {
  /** dL/dinput [N, C]. */
  dinput: Float32Array;
  /** dL/dweight [C] (accumulated into the given buffer, if any). */
  dweight: Float32Array;
  /** dL/dbias [C] (accumulated into the given buffer, if any). */
  dbias: Float32Array;
}

type Full<T> = { [K in keyof T]-?: Exclude<T[K], undefined> };
interface LayerNormNative {
  layerNorm(a: Full<Omit<LayerNormArgs, 'eps' | 'reference'>> & { eps?: number; reference?: boolean }): void;
  layerNormAsync(a: Full<Omit<LayerNormArgs, 'eps' | 'reference'>> & { eps?: number; reference?: boolean }): Promise<void>;
  layerNormBackward(a: Full<Omit<LayerNormBackwardArgs, 'accumulate' | 'reference'>> & { accumulate?: boolean; reference?: boolean }): void;
  layerNormBackwardAsync(
    a: Full<Omit<LayerNormBackwardArgs, 'accumulate' | 'reference'>> & { accumulate?: boolean; reference?: boolean },
  ): Promise<void>;
}
const native = () => nativeFunctions<LayerNormNative>();
const f32 = (n: unknown) => new Float32Array(Number.isSafeInteger(n) && (n as number) > 0 ? (n as number) : 0);
const rows = (a: { N?: number; C: number; input?: unknown }) =>
  a.N ?? (a.input instanceof Float32Array && Number.isSafeInteger(a.C) && a.C > 0 ? Math.floor(a.input.length / a.C) : 0);

function fwdArgs(a: LayerNormArgs) {
  const N = rows(a);
  return { ...a, N, out: a.out ?? f32(N * a.C), mean: a.mean ?? f32(N), rstd: a.rstd ?? f32(N) };
}
function bwdArgs(a: LayerNormBackwardArgs) {
  const N = rows(a);
  return { ...a, N, dinput: a.dinput ?? f32(N * a.C), dweight: a.dweight ?? f32(a.C), dbias: a.dbias ?? f32(a.C) };
}

/** out = (x - mean) * rstd * weight + bias per row; returns out, mean and rstd. */
export function layerNorm(args: LayerNormArgs): LayerNormResult {
  const a = fwdArgs(args);
  native().layerNorm(a);
  return { out: a.out, mean: a.mean, rstd: a.rstd };
}
export async function layerNormAsync(args: LayerNormArgs): Promise<LayerNormResult> {
  const a = fwdArgs(args);
  await native().layerNormAsync(a);
  return { out: a.out, mean: a.mean, rstd: a.rstd };
}
/** Gradients of layerNorm; dweight/dbias accumulate (see LayerNormBackwardArgs). */
export function layerNormBackward(args: LayerNormBackwardArgs): LayerNormBackwardResult {
  const a = bwdArgs(args);
  native().layerNormBackward(a);
  return { dinput: a.dinput, dweight: a.dweight, dbias: a.dbias };
}
export async function layerNormBackwardAsync(args: LayerNormBackwardArgs): Promise<LayerNormBackwardResult> {
  const a = bwdArgs(args);
  await native().layerNormBackwardAsync(a);
  return { dinput: a.dinput, dweight: a.dweight, dbias: a.dbias };
}
