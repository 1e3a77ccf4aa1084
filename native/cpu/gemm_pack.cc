// Packing routines of the packed GEMM. Panels past the matrix edge are zero-padded, so the
// micro-kernel always runs on full MR x NR tiles.
#include "cpu/gemm_pack.h"

#include <cstring>

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

}  // namespace

template <int MR>
void pack_a(bool trans_a, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t k0, int64_t kc,
            float* dst) {
  for (int64_t p = 0; p < mc; p += MR, dst += MR * kc) {
    int64_t rows = mc - p < MR ? mc - p : MR;
    if (trans_a) pack_direct<MR>(A + k0 * lda + i0 + p, lda, rows, kc, dst);     // A is [K,M]
    else pack_transposed<MR>(A + (i0 + p) * lda + k0, lda, rows, kc, dst);       // A is [M,K]
  }
}

template <int NR>
void pack_b(bool trans_b, const float* B, int64_t ldb, int64_t k0, int64_t kc, int64_t j0, int64_t nc,
            float* dst) {
  for (int64_t p = 0; p < nc; p += NR, dst += NR * kc) {
    int64_t cols = nc - p < NR ? nc - p : NR;
    if (trans_b) pack_transposed<NR>(B + (j0 + p) * ldb + k0, ldb, cols, kc, dst);  // B is [N,K]
    else pack_direct<NR>(B + k0 * ldb + j0 + p, ldb, cols, kc, dst);                // B is [K,N]
  }
}

#define MEDGYM_PACK_A(MR) \
  template void pack_a<MR>(bool, const float*, int64_t, int64_t, int64_t, int64_t, int64_t, float*);
#define MEDGYM_PACK_B(NR) \
  template void pack_b<NR>(bool, const float*, int64_t, int64_t, int64_t, int64_t, int64_t, float*);
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
