// AVX2+FMA GEMM kernels: the 6 x 16 micro-kernel of the packed path (12 ymm accumulators) and the
// dot-product tiles of the small-M path.
#include "cpu/cpu_features.h"
#include "cpu/gemm_internal.h"
#include "cpu/gemm_pack.h"
#include "cpu/simd.h"

namespace medgym::gemm_detail {

#if MEDGYM_X86
namespace {

constexpr int kMR = 6, kNV = 2, kNR = 8 * kNV;

template <int MR, int NV>
MEDGYM_AVX2 void micro_kernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha,
                              float beta) {
  __m256 acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_setzero_ps();
  // Fetch the C tile early: its rows are far apart and would otherwise miss at the end.
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
  if (NV * 8 > 16)
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + NV * 8 - 1), _MM_HINT_T0);
  for (int64_t k = 0; k < kc; ++k) {
    __m256 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = _mm256_load_ps(b + 8 * v);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      __m256 av = _mm256_broadcast_ss(a + r);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
    }
    a += MR;
    b += 8 * NV;
  }
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    float* cr = c + r * ldc;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      __m256 t = _mm256_mul_ps(va, acc[r][v]);
      if (beta != 0.0f) t = _mm256_fmadd_ps(vb, _mm256_loadu_ps(cr + 8 * v), t);
      _mm256_storeu_ps(cr + 8 * v, t);
    }
  }
}

// Lane mask of the first n lanes (all for n >= 8, none for n <= 0), for maskload/maskstore of tails.
MEDGYM_AVX2 inline __m256i tail_mask(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n < 0 ? 0 : n > 8 ? 8 : n)), idx);
}

// out[r * RN + j] = dot(A row r, B row j) over K, 8 lanes per accumulator, fixed reduction order.
template <int RM, int RN>
MEDGYM_AVX2 void dot_tile(int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* out) {
  __m256 acc[RM][RN];
#pragma GCC unroll 8
  for (int r = 0; r < RM; ++r)
#pragma GCC unroll 8
    for (int j = 0; j < RN; ++j) acc[r][j] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    __m256 bv[RN];
#pragma GCC unroll 8
    for (int j = 0; j < RN; ++j) bv[j] = _mm256_loadu_ps(B + j * ldb + k);
#pragma GCC unroll 8
    for (int r = 0; r < RM; ++r) {
      __m256 av = _mm256_loadu_ps(A + r * lda + k);
#pragma GCC unroll 8
      for (int j = 0; j < RN; ++j) acc[r][j] = _mm256_fmadd_ps(av, bv[j], acc[r][j]);
    }
  }
  if (k < K) {
    const __m256i m = tail_mask(K - k);
    __m256 bv[RN];
#pragma GCC unroll 8
    for (int j = 0; j < RN; ++j) bv[j] = _mm256_maskload_ps(B + j * ldb + k, m);
#pragma GCC unroll 8
    for (int r = 0; r < RM; ++r) {
      __m256 av = _mm256_maskload_ps(A + r * lda + k, m);
#pragma GCC unroll 8
      for (int j = 0; j < RN; ++j) acc[r][j] = _mm256_fmadd_ps(av, bv[j], acc[r][j]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < RM; ++r)
#pragma GCC unroll 8
    for (int j = 0; j < RN; ++j) out[r * RN + j] = simd::hsum256(acc[r][j]);
}

template <int RM, int RN>
MEDGYM_AVX2 void dot_block(int64_t i, int64_t j, int64_t K, float alpha, const float* A, int64_t lda,
                           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  float t[RM * RN];
  dot_tile<RM, RN>(K, A + i * lda, lda, B + j * ldb, ldb, t);
  for (int r = 0; r < RM; ++r)
    for (int q = 0; q < RN; ++q) {
      float* c = C + (i + r) * ldc + j + q;
      float v = alpha * t[r * RN + q];
      *c = beta == 0.0f ? v : v + beta * *c;
    }
}

template <int RM>
MEDGYM_AVX2 void dot_row_block(int64_t i, int64_t n0, int64_t n1, int64_t K, float alpha, const float* A,
                               int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  constexpr int RN = RM == 1 ? 8 : RM == 2 ? 4 : 3;
  int64_t j = n0;
  for (; j + RN <= n1; j += RN) dot_block<RM, RN>(i, j, K, alpha, A, lda, B, ldb, beta, C, ldc);
  for (; j < n1; ++j) dot_block<RM, 1>(i, j, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

MEDGYM_AVX2 void dot_rows(int64_t M, int64_t n0, int64_t n1, int64_t K, float alpha, const float* A,
                          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  int64_t i = 0;
  for (; i + 3 <= M; i += 3) dot_row_block<3>(i, n0, n1, K, alpha, A, lda, B, ldb, beta, C, ldc);
  if (M - i == 2) dot_row_block<2>(i, n0, n1, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else if (M - i == 1) dot_row_block<1>(i, n0, n1, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// RM rows of C, columns [j, j + 32) masked to n1: B rows streamed as 4 ymm per k.
template <int RM, bool kTail>
MEDGYM_AVX2 void axpy_block(int64_t i, int64_t j, int64_t n1, int64_t K, float alpha, bool trans_a,
                            const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                            int64_t ldc) {
  constexpr int NV = 4;
  __m256i m[NV];
  for (int v = 0; v < NV; ++v) m[v] = tail_mask(n1 - j - 8 * v);
  __m256 acc[RM][NV];
#pragma GCC unroll 4
  for (int r = 0; r < RM; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const float* b = B + k * ldb + j;
    __m256 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = kTail ? _mm256_maskload_ps(b + 8 * v, m[v]) : _mm256_loadu_ps(b + 8 * v);
#pragma GCC unroll 4
    for (int r = 0; r < RM; ++r) {
      __m256 av = _mm256_set1_ps(trans_a ? A[k * lda + i + r] : A[(i + r) * lda + k]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 4
  for (int r = 0; r < RM; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      float* c = C + (i + r) * ldc + j + 8 * v;
      __m256 t = _mm256_mul_ps(va, acc[r][v]);
      if (kTail) {
        if (beta != 0.0f) t = _mm256_fmadd_ps(vb, _mm256_maskload_ps(c, m[v]), t);
        _mm256_maskstore_ps(c, m[v], t);
      } else {
        if (beta != 0.0f) t = _mm256_fmadd_ps(vb, _mm256_loadu_ps(c), t);
        _mm256_storeu_ps(c, t);
      }
    }
}

MEDGYM_AVX2 void axpy_rows(int64_t M, int64_t n0, int64_t n1, int64_t K, float alpha, bool trans_a,
                           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                           int64_t ldc) {
  for (int64_t j = n0; j < n1; j += 32) {
    int64_t i = 0;
    if (j + 32 <= n1) {
      for (; i + 3 <= M; i += 3) axpy_block<3, false>(i, j, n1, K, alpha, trans_a, A, lda, B, ldb, beta, C, ldc);
      for (; i < M; ++i) axpy_block<1, false>(i, j, n1, K, alpha, trans_a, A, lda, B, ldb, beta, C, ldc);
    } else {
      for (; i + 3 <= M; i += 3) axpy_block<3, true>(i, j, n1, K, alpha, trans_a, A, lda, B, ldb, beta, C, ldc);
      for (; i < M; ++i) axpy_block<1, true>(i, j, n1, K, alpha, trans_a, A, lda, B, ldb, beta, C, ldc);
    }
  }
}

}  // namespace

const GemmImpl& impl_avx2() {
  static const GemmImpl impl{"avx2", kMR, kNR, 96, 384, 384, micro_kernel<kMR, kNV>, pack_a<kMR, true>, pack_b<kNR, true>,
                             dot_rows, axpy_rows, 16, 8};
  return impl;
}
#else
const GemmImpl& impl_avx2() { return impl_portable(); }
#endif

}  // namespace medgym::gemm_detail
