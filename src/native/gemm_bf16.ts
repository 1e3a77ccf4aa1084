// GEMM with bf16 weights: Y = X @ W^T (+ bias) (+ beta * Y), X and Y fp32, W bf16 (torch Linear layout).
import { nativeFunctions } from './runtime';

/**
 * 'exact': fp32 math on W widened to fp32 (exact), as sgemm on the widened weights.
 * 'bf16dot': X rounded to bf16 (nearest even) first, products summed in fp32 (AVX-512 BF16's
 * vdpbf16ps where the CPU has it): what PyTorch's bf16 CPU matmul computes.
 * 'packed': exact's numbers on sgemm's packed path, W's panels widened while packing (the Qwen
 * engine's prefill and fused head): bits of sgemm's packed path on the widened W; bias added after.
 */
export type Bf16Mode = 'exact' | 'bf16dot' | 'packed';

export interface GemmBf16Args {
  /** [M,K] fp32, row-major with row stride ldx; holds at least (M-1)*ldx + K floats. */
  X: Float32Array;
  /** [N,K] bf16 bits (the upper half of an fp32), row stride ldw: a Linear weight [out, in]. */
  W: Uint16Array;
  /** [M,N] output, row stride ldy, updated in place; allocated (zeros, ldy = N) when omitted, then beta must be 0. */
  Y?: Float32Array;
  /** Rows of X and Y (integer in [0, 2^31)). */
  M: number;
  /** Columns of Y, rows of W (integer in [0, 2^31)). */
  N: number;
  /** Inner dimension (integer in [0, 2^31)); K = 0 gives Y = beta * Y + bias. */
  K: number;
  /** Row strides (>= K, K and N). Default K, K and N. */
  ldx?: number;
  /** Row stride of W (>= K); default K. */
  ldw?: number;
  /** Row stride of Y (>= N); default N. */
  ldy?: number;
  /** [N] added to every row of Y. */
  bias?: Float32Array;
  /** Scale of the old Y (finite). Default 0: Y is overwritten and NaN/Inf already in it are ignored. */
  beta?: number;
  /** Default 'exact'. */
  mode?: Bf16Mode;
}

type NativeGemmBf16Args = GemmBf16Args & { Y: Float32Array };
interface GemmBf16Native {
  gemmBf16(a: NativeGemmBf16Args): void;
  gemmBf16Async(a: NativeGemmBf16Args): Promise<void>;
  gemmBf16Reference(a: NativeGemmBf16Args): void;
  gemmBf16ReferenceAsync(a: NativeGemmBf16Args): Promise<void>;
}
const native = () => nativeFunctions<GemmBf16Native>();

function withY(args: GemmBf16Args): NativeGemmBf16Args {
  // Not an options object, or Y given: the native side validates everything and names the argument.
  if (typeof args !== 'object' || args === null) return args as NativeGemmBf16Args;
  if (args.Y !== undefined && args.Y !== null) return args as NativeGemmBf16Args;
  if (typeof args.beta === 'number' && args.beta !== 0) {
    throw new RangeError(`gemmBf16: \`beta\` must be 0 when \`Y\` is omitted but received ${String(args.beta)}`);
  }
  if (args.ldy !== undefined && args.ldy !== args.N) {
    throw new RangeError(`gemmBf16: \`ldy\` must be N when \`Y\` is omitted but received ${String(args.ldy)}`);
  }
  const { M, N } = args;
  const ok = (d: unknown): d is number => Number.isInteger(d) && (d as number) >= 0 && (d as number) < 2 ** 31;
  // Bad dims are left for the native side to report (it names the argument); allocate nothing then.
  const Y = ok(M) && ok(N) && M * N <= 2 ** 32 ? new Float32Array(M * N) : new Float32Array(0);
  return { ...args, Y };
}

/** Y = X @ W^T (+ bias) (+ beta * Y) with the fast SIMD kernels; returns Y. Batch invariant: a row's result does not depend on M. */
export function gemmBf16(args: GemmBf16Args): Float32Array {
  const a = withY(args);
  native().gemmBf16(a);
  return a.Y;
}
/** gemmBf16 on the libuv thread pool; resolves to Y. */
export async function gemmBf16Async(args: GemmBf16Args): Promise<Float32Array> {
  const a = withY(args);
  await native().gemmBf16Async(a);
  return a.Y;
}
/** The plain reference (triple loop, double accumulation, X rounded in 'bf16dot'): slow; for tests. */
export function gemmBf16Reference(args: GemmBf16Args): Float32Array {
  const a = withY(args);
  native().gemmBf16Reference(a);
  return a.Y;
}
/** gemmBf16Reference on the libuv thread pool; resolves to Y. */
export async function gemmBf16ReferenceAsync(args: GemmBf16Args): Promise<Float32Array> {
  const a = withY(args);
  await native().gemmBf16ReferenceAsync(a);
  return a.Y;
}

/** fp32 -> bf16 bits, round to nearest even; NaN stays NaN (quieted); as fp32_to_bf16 in gemm_bf16.h. */
export function f32ToBf16(x: Float32Array): Uint16Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < u.length; i++) {
    const v = u[i];
    out[i] = (v & 0x7fffffff) > 0x7f800000 ? (v >>> 16) | 0x40 : ((v + 0x7fff + ((v >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}

/** bf16 bits -> fp32 (exact). */
export function bf16ToF32(h: Uint16Array): Float32Array {
  const u = new Uint32Array(h.length);
  for (let i = 0; i < h.length; i++) u[i] = h[i] << 16;
  return new Float32Array(u.buffer);
}
