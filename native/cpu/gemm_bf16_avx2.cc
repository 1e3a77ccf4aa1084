// AVX2 + FMA block kernel of gemm_bf16 (Exact; Bf16Dot on X rounded by the packer).
// A step takes 16 k: one 256-bit load of 16 bf16 per W row, widened as w << 16 (the 8 even k) and
// w & 0xFFFF0000 (the 8 odd k), against the packed X group stored even k then odd k. Per (i, j):
// acc = fma(x_even, w_even, acc); acc = fma(x_odd, w_odd, acc) for every step, then hsum256.
#include <cstring>

#include "cpu/gemm_bf16_internal.h"
#include "cpu/simd.h"

namespace medgym::bf16_detail {

#if MEDGYM_X86
namespace {

constexpr int kGroup = 16;

// One step for RM x RN sums: x rows at x (row stride kpad floats), W rows at w[q].
template <int RM, int RN>
MEDGYM_AVX2 inline void step(const float* x, int64_t kpad, const uint16_t* const* w, __m256 (&acc)[RM][RN]) {
  const __m256i hi = _mm256_set1_epi32(static_cast<int>(0xFFFF0000u));
  __m256 xe[RM], xo[RM];
#pragma GCC unroll 4
  for (int r = 0; r < RM; ++r) xe[r] = _mm256_load_ps(x + r * kpad), xo[r] = _mm256_load_ps(x + r * kpad + 8);
#pragma GCC unroll 8
  for (int q = 0; q < RN; ++q) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[q]));
    const __m256 we = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    const __m256 wo = _mm256_castsi256_ps(_mm256_and_si256(v, hi));
#pragma GCC unroll 4
    for (int r = 0; r < RM; ++r) {
      acc[r][q] = _mm256_fmadd_ps(xe[r], we, acc[r][q]);
      acc[r][q] = _mm256_fmadd_ps(xo[r], wo, acc[r][q]);
    }
  }
}

template <int RM, int RN>
MEDGYM_AVX2 void tile(const Block& b, int64_t i, int64_t j) {
  const float* x = static_cast<const float*>(b.xp) + i * b.kpad + b.k0;
  const uint16_t* w[RN];
  for (int q = 0; q < RN; ++q) w[q] = b.W + (j + q) * b.ldw + b.k0;
  __m256 acc[RM][RN];
#pragma GCC unroll 4
  for (int r = 0; r < RM; ++r)
#pragma GCC unroll 8
    for (int q = 0; q < RN; ++q) acc[r][q] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + kGroup <= b.kc; k += kGroup) {
    step<RM, RN>(x + k, b.kpad, w, acc);
#pragma GCC unroll 8
    for (int q = 0; q < RN; ++q) w[q] += kGroup;
  }
  if (k < b.kc) {  // the K tail: W rows copied into zero-padded groups (X is zero-padded already)
    alignas(32) uint16_t tail[RN][kGroup];
    const uint16_t* wt[RN];
    for (int q = 0; q < RN; ++q) {
      std::memset(tail[q], 0, sizeof tail[q]);
      std::memcpy(tail[q], w[q], static_cast<size_t>(b.kc - k) * sizeof(uint16_t));
      wt[q] = tail[q];
    }
    step<RM, RN>(x + k, b.kpad, wt, acc);
  }
  for (int r = 0; r < RM; ++r)
    for (int q = 0; q < RN; ++q) finish(b.Y + (i + r) * b.ldy + j + q, simd::hsum256(acc[r][q]), b, j + q);
}

// RM rows against columns [j0, j1): RN columns at a time, then the remaining ones.
template <int RM, int RN>
MEDGYM_AVX2 void row_block(const Block& b, int64_t i) {
  int64_t j = b.j0;
  for (; j + RN <= b.j1; j += RN) tile<RM, RN>(b, i, j);
  for (; j + 2 <= b.j1; j += 2) tile<RM, 2>(b, i, j);
  if (j < b.j1) tile<RM, 1>(b, i, j);
}

MEDGYM_AVX2 void block(const Block& b) {
  int64_t i = 0;
  for (; i + 2 <= b.rows; i += 2) row_block<2, 4>(b, i);
  if (i < b.rows) row_block<1, 8>(b, i);
}

}  // namespace

const Bf16Impl& impl_avx2() {
  static const Bf16Impl impl{"avx2", kGroup, false, true, 2048, 384 << 10, pack_rows_generic, block};
  return impl;
}
#else
const Bf16Impl& impl_avx2() { return impl_portable(); }
#endif

}  // namespace medgym::bf16_detail
