// AVX-512 GEMM kernels: the MR x NR micro-kernel of the packed path (NR = 16 * NV floats, NV zmm
// accumulators per row) and the dot-product tiles of the small-M path.
#include "cpu/cpu_features.h"
#include "cpu/gemm_internal.h"
#include "cpu/gemm_pack.h"
#include "cpu/simd.h"

namespace medgym::gemm_detail {

#if MEDGYM_X86
namespace {

constexpr int kMR = 12, kNV = 2, kNR = 16 * kNV;

template <int MR, int NV>
MEDGYM_AVX512 void micro_kernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha,
                                float beta) {
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  // Fetch the C tile early: its rows are far apart and would otherwise miss at the end.
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
  if (NV * 16 > 16)
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + NV * 16 - 1), _MM_HINT_T0);
  for (int64_t k = 0; k < kc; ++k) {
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_ps(b + 16 * v);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      __m512 av = _mm512_set1_ps(a[r]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
    a += MR;
    b += 16 * NV;
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    float* cr = c + r * ldc;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      __m512 t = _mm512_mul_ps(va, acc[r][v]);
      if (beta != 0.0f) t = _mm512_fmadd_ps(vb, _mm512_loadu_ps(cr + 16 * v), t);
      _mm512_storeu_ps(cr + 16 * v, t);
    }
  }
}

// out[r * RN + j] = dot(A row r, B row j) over K, 16 lanes per accumulator, fixed reduction order.
template <int RM, int RN>
MEDGYM_AVX512 void dot_tile(int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* out) {
  __m512 acc[RM][RN];
#pragma GCC unroll 8
  for (int r = 0; r < RM; ++r)
#pragma GCC unroll 8
    for (int j = 0; j < RN; ++j) acc[r][j] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    __m512 bv[RN];
#pragma GCC unroll 8
    for (int j = 0; j < RN; ++j) bv[j] = _mm512_loadu_ps(B + j * ldb + k);
#pragma GCC unroll 8
    for (int r = 0; r < RM; ++r) {
      __m512 av = _mm512_loadu_ps(A + r * lda + k);
#pragma GCC unroll 8
      for (int j = 0; j < RN; ++j) acc[r][j] = _mm512_fmadd_ps(av, bv[j], acc[r][j]);
    }
  }
  if (k < K) {
    const __mmask16 m = static_cast<__mmask16>((1u << (K - k)) - 1u);
    __m512 bv[RN];
#pragma GCC unroll 8
    for (int j = 0; j < RN; ++j) bv[j] = _mm512_maskz_loadu_ps(m, B + j * ldb + k);
#pragma GCC unroll 8
    for (int r = 0; r < RM; ++r) {
      __m512 av = _mm512_maskz_loadu_ps(m, A + r * lda + k);
#pragma GCC unroll 8
      for (int j = 0; j < RN; ++j) acc[r][j] = _mm512_fmadd_ps(av, bv[j], acc[r][j]);
    }
  }
  // (GCC 12 warns about an internal undefined value in the 512 -> 256 extract of reduce_add.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC unroll 8
  for (int r = 0; r < RM; ++r)
#pragma GCC unroll 8
    for (int j = 0; j < RN; ++j) out[r * RN + j] = _mm512_reduce_add_ps(acc[r][j]);
#pragma GCC diagnostic pop
}

template <int RM, int RN>
MEDGYM_AVX512 void dot_block(int64_t i, int64_t j, int64_t K, float alpha, const float* A, int64_t lda,
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
MEDGYM_AVX512 void dot_row_block(int64_t i, int64_t n0, int64_t n1, int64_t K, float alpha, const float* A,
                                 int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  constexpr int RN = RM == 1 ? 8 : 4;
  int64_t j = n0;
  for (; j + RN <= n1; j += RN) dot_block<RM, RN>(i, j, K, alpha, A, lda, B, ldb, beta, C, ldc);
  for (; j < n1; ++j) dot_block<RM, 1>(i, j, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

MEDGYM_AVX512 void dot_rows(int64_t M, int64_t n0, int64_t n1, int64_t K, float alpha, const float* A,
                            int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  int64_t i = 0;
  for (; i + 4 <= M; i += 4) dot_row_block<4>(i, n0, n1, K, alpha, A, lda, B, ldb, beta, C, ldc);
  if (M - i == 3) dot_row_block<3>(i, n0, n1, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else if (M - i == 2) dot_row_block<2>(i, n0, n1, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else if (M - i == 1) dot_row_block<1>(i, n0, n1, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// RM rows of C, columns [j, j + 64) masked to n1: B rows streamed as 4 zmm per k.
template <int RM>
MEDGYM_AVX512 void axpy_block(int64_t i, int64_t j, int64_t n1, int64_t K, float alpha, bool trans_a,
                              const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                              int64_t ldc) {
  constexpr int NV = 4;
  __mmask16 m[NV];
  for (int v = 0; v < NV; ++v) {
    int64_t n = n1 - j - 16 * v;
    m[v] = n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : static_cast<__mmask16>((1u << n) - 1u);
  }
  __m512 acc[RM][NV];
#pragma GCC unroll 4
  for (int r = 0; r < RM; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const float* b = B + k * ldb + j;
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_maskz_loadu_ps(m[v], b + 16 * v);
#pragma GCC unroll 4
    for (int r = 0; r < RM; ++r) {
      __m512 av = _mm512_set1_ps(trans_a ? A[k * lda + i + r] : A[(i + r) * lda + k]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 4
  for (int r = 0; r < RM; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      float* c = C + (i + r) * ldc + j + 16 * v;
      __m512 t = _mm512_mul_ps(va, acc[r][v]);
      if (beta != 0.0f) t = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m[v], c), t);
      _mm512_mask_storeu_ps(c, m[v], t);
    }
}

MEDGYM_AVX512 void axpy_rows(int64_t M, int64_t n0, int64_t n1, int64_t K, float alpha, bool trans_a,
                             const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                             int64_t ldc) {
  for (int64_t j = n0; j < n1; j += 64) {
    int64_t i = 0;
    for (; i + 4 <= M; i += 4) axpy_block<4>(i, j, n1, K, alpha, trans_a, A, lda, B, ldb, beta, C, ldc);
    for (; i < M; ++i) axpy_block<1>(i, j, n1, K, alpha, trans_a, A, lda, B, ldb, beta, C, ldc);
  }
}

}  // namespace

const GemmImpl& impl_avx512() {
  static const GemmImpl impl{"avx512", kMR, kNR, 96, 384, 384, micro_kernel<kMR, kNV>, pack_a<kMR, true>, pack_b<kNR, true>,
                             dot_rows, axpy_rows, 48, 48};
  return impl;
}
#else
const GemmImpl& impl_avx512() { return impl_portable(); }
#endif

}  // namespace medgym::gemm_detail
