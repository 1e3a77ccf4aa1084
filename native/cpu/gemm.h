// Single-precision GEMM, row-major:  C[M,N] = alpha * op(A) @ op(B) + beta * C
//   op(A) is [M,K]: A is stored [M,K] with row stride lda, or [K,M] when trans_a.
//   op(B) is [K,N]: B is stored [K,N] with row stride ldb, or [N,K] when trans_b.
// beta == 0 overwrites C (NaN/Inf already in C are ignored), as in BLAS; with K == 0 or alpha == 0,
// A and B are not read and C = beta * C.
// sgemm uses the thread pool; called from inside a parallel region it runs on the calling thread,
// so kernels may call it per tile.
#pragma once
#include <cstdint>

namespace medgym {

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// Plain reference: triple loop with double accumulation. Slow; for tests and as the ground truth.
void sgemm_ref(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
               int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace medgym
