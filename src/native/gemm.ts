// Single-precision GEMM, row-major: C = alpha * op(A) @ op(B) + beta * C.
import { nativeFunctions } from './runtime';

export interface GemmArgs {
  /** op(A) is [M,K]: A holds M*K floats, [M,K] row-major, or [K,M] when transA. */
  A: Float32Array;
  /** op(B) is [K,N]: B holds K*N floats, [K,N] row-major, or [N,K] when transB (x @ W^T with W [out,in]). */
  B: Float32Array;
  /** [M,N] row-major output (M*N floats), updated in place; allocated (zeros) when omitted, then beta must be 0. */
  C?: Float32Array;
  /** Rows of op(A) and C (integer in [0, 2^31)). */
  M: number;
  /** Columns of op(B) and C (integer in [0, 2^31)). */
  N: number;
  /** Inner dimension (integer in [0, 2^31)); K = 0 gives C = beta * C. */
  K: number;
  /** Use A^T: A is stored [K,M]. Default false. */
  transA?: boolean;
  /** Use B^T: B is stored [N,K]. Default false. */
  transB?: boolean;
  /** Scale of the product (finite). Default 1; 0 skips reading A and B, as in BLAS. */
  alpha?: number;
  /** Scale of the old C (finite). Default 0: C is overwritten and NaN/Inf already in it are ignored. */
  beta?: number;
}

type NativeGemmArgs = GemmArgs & { C: Float32Array };
interface GemmNative {
  gemm(a: NativeGemmArgs): void;
  gemmAsync(a: NativeGemmArgs): Promise<void>;
  gemmReference(a: NativeGemmArgs): void;
  gemmReferenceAsync(a: NativeGemmArgs): Promise<void>;
}
const native = () => nativeFunctions<GemmNative>();

function withC(args: GemmArgs): NativeGemmArgs {
  // Not an options object, or C given: the native side validates everything and names the argument.
  if (typeof args !== 'object' || args === null) return args as NativeGemmArgs;
  if (args.C !== undefined && args.C !== null) return args as NativeGemmArgs;
  if (typeof args.beta === 'number' && args.beta !== 0) {
    throw new RangeError(`gemm: \`beta\` must be 0 when \`C\` is omitted but received ${String(args.beta)}`);
  }
  const { M, N } = args;
  const ok = (d: unknown): d is number => Number.isInteger(d) && (d as number) >= 0 && (d as number) < 2 ** 31;
  // Bad dims are left for the native side to report (it names the argument); allocate nothing then.
  const C = ok(M) && ok(N) && M * N <= 2 ** 32 ? new Float32Array(M * N) : new Float32Array(0);
  return { ...args, C };
}

/** C = alpha * op(A) @ op(B) + beta * C with the fast packed SIMD kernel; returns C. */
export function gemm(args: GemmArgs): Float32Array {
  const a = withC(args);
  native().gemm(a);
  return a.C;
}
/** gemm on the libuv thread pool; resolves to C. */
export async function gemmAsync(args: GemmArgs): Promise<Float32Array> {
  const a = withC(args);
  await native().gemmAsync(a);
  return a.C;
}
/** The plain reference GEMM (triple loop, double accumulation): slow; for tests and comparisons. */
export function gemmReference(args: GemmArgs): Float32Array {
  const a = withC(args);
  native().gemmReference(a);
  return a.C;
}
/** gemmReference on the libuv thread pool; resolves to C. */
export async function gemmReferenceAsync(args: GemmArgs): Promise<Float32Array> {
  const a = withC(args);
  await native().gemmReferenceAsync(a);
  return a.C;
}
