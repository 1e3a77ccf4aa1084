// Float64 reference GEMM for the tests: C = alpha * op(A) @ op(B) + beta * C0 (beta 0 ignores C0),
// plus the per-element scale alpha * sum_k |a||b| + |beta c0| that bounds float32 rounding.
export interface GemmCase {
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  alpha: number;
  beta: number;
}

export function gemmRef64(c: GemmCase, A: ArrayLike<number>, B: ArrayLike<number>, C0: ArrayLike<number>): { out: Float64Array; scale: Float64Array } {
  const { M, N, K, transA, transB, alpha, beta } = c;
  const out = new Float64Array(M * N);
  const scale = new Float64Array(M * N);
  // op(A) as [M,K] rows and op(B)^T as [N,K] rows, so the inner loop runs over contiguous memory.
  const a = new Float64Array(M * K);
  const bt = new Float64Array(N * K);
  for (let i = 0; i < M; i++) for (let k = 0; k < K; k++) a[i * K + k] = transA ? A[k * M + i] : A[i * K + k];
  for (let j = 0; j < N; j++) for (let k = 0; k < K; k++) bt[j * K + k] = transB ? B[j * K + k] : B[k * N + j];
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let acc = 0;
      let abs = 0;
      for (let k = 0, ai = i * K, bj = j * K; k < K; k++) {
        const p = a[ai + k] * bt[bj + k];
        acc += p;
        abs += p < 0 ? -p : p; // (not Math.abs: it is very slow inside jest's VM context)
      }
      const old = beta === 0 ? 0 : beta * C0[i * N + j];
      out[i * N + j] = alpha * acc + old;
      scale[i * N + j] = Math.abs(alpha) * abs + Math.abs(old);
    }
  }
  return { out, scale };
}

/**
 * Throws unless |got - want| <= tol * scale for every element, with tol = (K + 4) * 2^-23: the
 * classic bound of a K-term float32 dot product (plus the alpha/beta update).
 */
export function expectGemmClose(got: ArrayLike<number>, want: Float64Array, scale: Float64Array, K: number): void {
  const tol = (K + 4) * 2 ** -23;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    if (!(err <= tol * scale[i] + 1e-30)) {
      throw new Error(`element ${i}: got ${got[i]}, expected ${want[i]} (error ${err.toExponential(3)} > ${(tol * scale[i]).toExponential(3)})`);
    }
  }
}
