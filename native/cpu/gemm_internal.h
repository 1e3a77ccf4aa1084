// Internals of the packed GEMM (gemm.cc): the per-SIMD-level micro-kernels and packers.
// Not a public interface; only gemm*.cc include it.
//
// Packed layouts (BLIS/GotoBLAS):
//   A panel: op(A)[i0 : i0+MR, k0 : k0+kc] stored k-major, MR floats per k (rows past M are 0).
//   B panel: op(B)[k0 : k0+kc, j0 : j0+NR] stored k-major, NR floats per k (columns past N are 0).
// The micro-kernel multiplies one A panel by one B panel and updates a full MR x NR tile of C:
//   C = alpha * (A_panel @ B_panel) + beta * C   (beta == 0: C is not read).
// Every element of C goes through exactly the same operations whatever its tile, so edge tiles
// (computed in a temporary MR x NR tile) and any thread partition give the same bits.
#pragma once
#include <cstdint>

namespace medgym::gemm_detail {

using MicroKernel = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha,
                             float beta);
// Packs op(A)[i0:i0+mc, k0:k0+kc] into ceil(mc/MR) panels at dst.
using PackA = void (*)(bool trans_a, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t k0,
                       int64_t kc, float* dst);
// Packs op(B)[k0:k0+kc, j0:j0+nc] into ceil(nc/NR) panels at dst.
using PackB = void (*)(bool trans_b, const float* B, int64_t ldb, int64_t k0, int64_t kc, int64_t j0,
                       int64_t nc, float* dst);
// Small-M path on unpacked rows: C[i, j] = alpha * dot(A[i, :K], B[j, :K]) + beta * C[i, j] for
// i < M, n0 <= j < n1 (A is [M,K] with row stride lda, B is [N,K] with row stride ldb).
// The dot products of every (i, j) are accumulated in the same order whatever the tile.
using DotRows = void (*)(int64_t M, int64_t n0, int64_t n1, int64_t K, float alpha, const float* A,
                         int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// Small-M path for op(B) = B stored [K,N] (row stride ldb), unpacked: rows of B stream through
// vector registers, C[i, n0:n1] for i < M accumulates alpha * sum_k op(A)[i,k] B[k, :] + beta * C.
// op(A)[i,k] is A[i*lda + k], or A[k*lda + i] when trans_a. One FMA chain per element over all of K.
using AxpyRows = void (*)(int64_t M, int64_t n0, int64_t n1, int64_t K, float alpha, bool trans_a,
                          const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                          int64_t ldc);

struct GemmImpl {
  const char* name;
  int mr, nr;
  int64_t mc, kc, nc;  // cache blocking (mc multiple of mr, nc multiple of nr)
  MicroKernel kernel;
  PackA pack_a;
  PackB pack_b;
  DotRows dot_rows;
  AxpyRows axpy_rows;
  // Measured crossovers against the packed path: small-M paths are used up to these M.
  int64_t dot_max_m;   // op(A) = A, op(B) = B^T: dot path
  int64_t axpy_max_m;  // op(B) = B: axpy path
};

const GemmImpl& impl_portable();
const GemmImpl& impl_avx2();    // only valid when simd_level() >= Avx2Fma
const GemmImpl& impl_avx512();  // only valid when simd_level() >= Avx512

}  // namespace medgym::gemm_detail

namespace medgym::gemm_detail {
// The two paths of sgemm with an explicit implementation (for tuning benches and tests of a path).
void sgemm_packed(const GemmImpl& im, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                  float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                  int64_t ldc);
// op(A) = A [M,K], op(B) = W^T with W [N,K] in bf16 (gemm_bf16.h), on the packed path: W's panels are
// widened to fp32 while packing, so the result has the bits of sgemm_packed on the widened W (and,
// like it, does not depend on M, a row's place or the threads).
void sgemm_packed_bf16w(const GemmImpl& im, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                        int64_t lda, const uint16_t* W, int64_t ldw, float beta, float* C, int64_t ldc);
// op(B) = B [K,N], any op(A).
void sgemm_axpy(const GemmImpl& im, bool trans_a, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
// op(A) = A [M,K], op(B) = B^T with B [N,K].
void sgemm_dot(const GemmImpl& im, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
               const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
}  // namespace medgym::gemm_detail
