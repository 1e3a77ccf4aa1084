// Packing routines of the packed GEMM. Panels past the matrix edge are zero-padded, so the
// micro-kernel always runs on full MR x NR tiles.
#include "cpu/gemm_pack.h"

#include <cstring>

#include "cpu/simd.h"

namespace medgym::gemm_detail {

namespace {

// dst[k * W + w] = src[w * ld + k] for w < rows (rows <= W), zero for rows <= w < W: a transposing
// copy of `rows` strided rows of length kc. Done in blocks of 8 k so reads stay sequential per row
// and writes stay within a few cache lines.
template <int W>
inline void pack_transposed(const float* src, int64_t ld, int64_t rows, int64_t kc, float* dst) {
  int64_t k = 0;
  for (; k + 8 <= kc; k += 8) {
    float* d = dst + k * W;
    for (int64_t w = 0; w < rows; ++w) {
      const float* s = src + w * ld + k;
      for (int q = 0; q < 8; ++q) d[q * W + w] = s[q];
    }
    for (int64_t w = rows; w < W; ++w)
      for (int q = 0; q < 8; ++q) d[q * W + w] = 0.0f;
  }
  for (; k < kc; ++k) {
    float* d = dst + k * W;
    for (int64_t w = 0; w < rows; ++w) d[w] = src[w * ld + k];
    for (int64_t w = rows; w < W; ++w) d[w] = 0.0f;
  }
}

#if MEDGYM_X86
// The same transposing copy with 8x8 (ymm) and 4x4 (xmm) register transposes, for full panels
// (rows == W); used by the AVX2 and AVX-512 implementations.
MEDGYM_AVX2 inline void transpose8x8(const float* s, int64_t ld, float* d, int64_t W) {
  __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + ld), r2 = _mm256_loadu_ps(s + 2 * ld),
         r3 = _mm256_loadu_ps(s + 3 * ld), r4 = _mm256_loadu_ps(s + 4 * ld), r5 = _mm256_loadu_ps(s + 5 * ld),
         r6 = _mm256_loadu_ps(s + 6 * ld), r7 = _mm256_loadu_ps(s + 7 * ld);
  __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
         t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
         t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
         u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
         u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
         u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_storeu_ps(d + 0 * W, _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_storeu_ps(d + 1 * W, _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_storeu_ps(d + 2 * W, _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_storeu_ps(d + 3 * W, _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_storeu_ps(d + 4 * W, _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_storeu_ps(d + 5 * W, _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_storeu_ps(d + 6 * W, _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_storeu_ps(d + 7 * W, _mm256_permute2f128_ps(u3, u7, 0x31));
}

MEDGYM_AVX2 inline void transpose4x4(const float* s, int64_t ld, float* d, int64_t W) {
  __m128 r0 = _mm_loadu_ps(s), r1 = _mm_loadu_ps(s + ld), r2 = _mm_loadu_ps(s + 2 * ld), r3 = _mm_loadu_ps(s + 3 * ld);
  _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
  _mm_storeu_ps(d, r0);
  _mm_storeu_ps(d + W, r1);
  _mm_storeu_ps(d + 2 * W, r2);
  _mm_storeu_ps(d + 3 * W, r3);
}

template <int W>
MEDGYM_AVX2 void pack_transposed_avx2(const float* src, int64_t ld, int64_t rows, int64_t kc, float* dst) {
  if (rows != W) return pack_transposed<W>(src, ld, rows, kc, dst);
  int64_t k = 0;
  for (; k + 8 <= kc; k += 8) {
    float* d = dst + k * W;
    int w = 0;
    for (; w + 8 <= W; w += 8) transpose8x8(src + w * ld + k, ld, d + w, W);
    for (; w + 4 <= W; w += 4) {
      transpose4x4(src + w * ld + k, ld, d + w, W);
      transpose4x4(src + w * ld + k + 4, ld, d + 4 * W + w, W);
    }
    for (; w < W; ++w)
      for (int q = 0; q < 8; ++q) d[q * W + w] = src[w * ld + k + q];
  }
  for (; k < kc; ++k)
    for (int w = 0; w < W; ++w) dst[k * W + w] = src[w * ld + k];
}

// dst[k * W + w] = src[k * ld + w] for full panels (cols == W) with vector loads and stores.
template <int W>
MEDGYM_AVX2 void pack_direct_avx2(const float* src, int64_t ld, int64_t kc, float* dst) {
  for (int64_t k = 0; k < kc; ++k, src += ld, dst += W) {
    int w = 0;
#pragma GCC unroll 8
    for (; w + 8 <= W; w += 8) _mm256_storeu_ps(dst + w, _mm256_loadu_ps(src + w));
    if (w + 4 <= W) _mm_storeu_ps(dst + w, _mm_loadu_ps(src + w)), w += 4;
    for (; w < W; ++w) dst[w] = src[w];
  }
}
#endif

// dst[k * W + w] = src[k * ld + w] for w < cols, zero beyond: rows of a k-major matrix.
template <int W>
inline void pack_direct(const float* src, int64_t ld, int64_t cols, int64_t kc, float* dst) {
  if (cols == W) {
    for (int64_t k = 0; k < kc; ++k) std::memcpy(dst + k * W, src + k * ld, W * sizeof(float));
    return;
  }
  for (int64_t k = 0; k < kc; ++k) {
    float* d = dst + k * W;
    const float* s = src + k * ld;
    for (int64_t w = 0; w < cols; ++w) d[w] = s[w];
    for (int64_t w = cols; w < W; ++w) d[w] = 0.0f;
  }
}

template <int W, bool kSimd>
inline void direct(const float* src, int64_t ld, int64_t cols, int64_t kc, float* dst) {
#if MEDGYM_X86
  if (kSimd && cols == W) return pack_direct_avx2<W>(src, ld, kc, dst);
#endif
  pack_direct<W>(src, ld, cols, kc, dst);
}

template <int W, bool kSimd>
inline void transposed(const float* src, int64_t ld, int64_t rows, int64_t kc, float* dst) {
#if MEDGYM_X86
  if (kSimd) return pack_transposed_avx2<W>(src, ld, rows, kc, dst);
#endif
  pack_transposed<W>(src, ld, rows, kc, dst);
}

}  // namespace

template <int MR, bool kSimd>
void pack_a(bool trans_a, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t k0, int64_t kc,
            float* dst) {
  for (int64_t p = 0; p < mc; p += MR, dst += MR * kc) {
    int64_t rows = mc - p < MR ? mc - p : MR;
    if (trans_a) direct<MR, kSimd>(A + k0 * lda + i0 + p, lda, rows, kc, dst);     // A is [K,M]
    else transposed<MR, kSimd>(A + (i0 + p) * lda + k0, lda, rows, kc, dst);    // A is [M,K]
  }
}

template <int NR, bool kSimd>
void pack_b(bool trans_b, const float* B, int64_t ldb, int64_t k0, int64_t kc, int64_t j0, int64_t nc,
            float* dst) {
  for (int64_t p = 0; p < nc; p += NR, dst += NR * kc) {
    int64_t cols = nc - p < NR ? nc - p : NR;
    if (trans_b) transposed<NR, kSimd>(B + (j0 + p) * ldb + k0, ldb, cols, kc, dst);  // B is [N,K]
    else direct<NR, kSimd>(B + k0 * ldb + j0 + p, ldb, cols, kc, dst);                // B is [K,N]
  }
}

#define MEDGYM_PACK_A(MR)                                                                                 \
  template void pack_a<MR, false>(bool, const float*, int64_t, int64_t, int64_t, int64_t, int64_t, float*); \
  template void pack_a<MR, true>(bool, const float*, int64_t, int64_t, int64_t, int64_t, int64_t, float*);
#define MEDGYM_PACK_B(NR)                                                                                 \
  template void pack_b<NR, false>(bool, const float*, int64_t, int64_t, int64_t, int64_t, int64_t, float*); \
  template void pack_b<NR, true>(bool, const float*, int64_t, int64_t, int64_t, int64_t, int64_t, float*);
MEDGYM_PACK_A(4)
MEDGYM_PACK_A(6)
MEDGYM_PACK_A(8)
MEDGYM_PACK_A(12)
MEDGYM_PACK_A(14)
MEDGYM_PACK_B(8)
MEDGYM_PACK_B(16)
MEDGYM_PACK_B(32)
MEDGYM_PACK_B(48)
MEDGYM_PACK_B(64)

}  // namespace medgym::gemm_detail
