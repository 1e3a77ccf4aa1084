// AVX-512 block kernels of gemm_bf16 (and their X packers). A step takes 32 k of each (i, j); one
// 512-bit load holds 32 bf16 of a W row.
//   Exact:  W is widened as w << 16 (the 16 even k) and w & 0xFFFF0000 (the 16 odd k), against the
//           packed fp32 X group stored even k then odd k. Per (i, j), every step:
//             acc = fma(x_even, w_even, acc); acc = fma(x_odd, w_odd, acc)
//           (The two integer ops per W vector are shared by the RM rows of a tile; with 4 rows the
//           tile runs at ~90% of the FMA peak in cache, so W is not widened into a buffer first.)
//   Dpbf16: X packed as bf16 in natural order; per (i, j), every step: acc = vdpbf16ps(acc, x, w)
//           (lane l adds x[2l] w[2l] and x[2l+1] w[2l+1]).
// The K tail is a masked load of W (X is zero-padded). Sums are reduced by reduce4's fixed tree and
// stored by finish4 (finish() of gemm_bf16_internal.h, four columns at a time).
#include <type_traits>

#include "cpu/gemm_bf16_internal.h"
#include "cpu/simd.h"

// GCC 12 warns about the internal undefined source operand of _mm512_slli_epi32 once inlined.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#if MEDGYM_X86
#define MEDGYM_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")))
#define MEDGYM_AVX512_INLINE MEDGYM_AVX512 inline __attribute__((always_inline))
#define MEDGYM_AVX512BF16_INLINE MEDGYM_AVX512BF16 inline __attribute__((always_inline))
#endif

namespace medgym::bf16_detail {

#if MEDGYM_X86
namespace {

constexpr int kGroup = 32;
constexpr int64_t kKcMax = 768;  // a tile's X rows (4 x 3 KB fp32) and W rows (4 x 1.5 KB) stay in L1

template <int N>
using Int = std::integral_constant<int, N>;

// ---- X packing ----------------------------------------------------------------------------------

// x rounded to bf16 (round to nearest even; NaN quieted), as fp32: fp32_to_bf16 of gemm_bf16.h.
MEDGYM_AVX512_INLINE __m512 round_bf16(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), lsb));
  r = _mm512_mask_or_epi32(r, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), u, _mm512_set1_epi32(0x00400000));
  return _mm512_castsi512_ps(_mm512_and_si512(r, _mm512_set1_epi32(static_cast<int>(0xFFFF0000u))));
}

// The 32 floats of row x at k (zero at and past K), rounded to bf16 when `round`.
MEDGYM_AVX512_INLINE void load_group(const float* x, int64_t k, int64_t K, bool round, __m512* lo, __m512* hi) {
  const int64_t n = K - k;
  if (n >= kGroup) {
    *lo = _mm512_loadu_ps(x + k), *hi = _mm512_loadu_ps(x + k + 16);
  } else {
    const uint32_t m = static_cast<uint32_t>((1ull << (n > 0 ? n : 0)) - 1);
    *lo = _mm512_maskz_loadu_ps(static_cast<__mmask16>(m), x + k);
    *hi = _mm512_maskz_loadu_ps(static_cast<__mmask16>(m >> 16), x + k + 16);
  }
  if (round) *lo = round_bf16(*lo), *hi = round_bf16(*hi);
}

// fp32 rows, each group of 32 stored even k then odd k (the Exact kernel's order).
MEDGYM_AVX512 void pack_exact(const Bf16Impl&, bool round, const float* X, int64_t ldx, int64_t r0, int64_t r1,
                              int64_t K, int64_t kpad, void* dst) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  for (int64_t r = r0; r < r1; ++r) {
    float* d = static_cast<float*>(dst) + r * kpad;
    for (int64_t k = 0; k < kpad; k += kGroup) {
      __m512 lo, hi;
      load_group(X + r * ldx, k, K, round, &lo, &hi);
      _mm512_store_ps(d + k, _mm512_permutex2var_ps(lo, even, hi));
      _mm512_store_ps(d + k + 16, _mm512_permutex2var_ps(lo, odd, hi));
    }
  }
}

// bf16 rows in natural order (the Dpbf16 kernel's); X is always rounded.
MEDGYM_AVX512 void pack_dp(const Bf16Impl&, bool, const float* X, int64_t ldx, int64_t r0, int64_t r1, int64_t K,
                           int64_t kpad, void* dst) {
  // The upper halves of the 32 rounded floats: 16-bit elements 1, 3, .., 63 of (lo, hi).
  alignas(64) static const uint16_t kUpper[32] = {1,  3,  5,  7,  9,  11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31,
                                                  33, 35, 37, 39, 41, 43, 45, 47, 49, 51, 53, 55, 57, 59, 61, 63};
  const __m512i upper = _mm512_load_si512(kUpper);
  for (int64_t r = r0; r < r1; ++r) {
    uint16_t* d = static_cast<uint16_t*>(dst) + r * kpad;
    for (int64_t k = 0; k < kpad; k += kGroup) {
      __m512 lo, hi;
      load_group(X + r * ldx, k, K, true, &lo, &hi);
      _mm512_store_si512(d + k, _mm512_permutex2var_epi16(_mm512_castps_si512(lo), upper, _mm512_castps_si512(hi)));
    }
  }
}

// ---- reduction and store, shared by the kernels -------------------------------------------------

// The sums of a, b, c, d in lanes 0..3, each by the tree of _mm512_reduce_add_ps: lane l + lane l+8,
// then l + l+4, then l + l+2, then 0 + 1. The tree is per element, so a sum's bits do not depend on
// the other three vectors.
MEDGYM_AVX512_INLINE __m128 reduce4(__m512 a, __m512 b, __m512 c, __m512 d) {
  const __m512 ab = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
  const __m512 cd = _mm512_add_ps(_mm512_shuffle_f32x4(c, d, 0x44), _mm512_shuffle_f32x4(c, d, 0xEE));
  // 128-bit lane t now holds four partial sums of the t-th vector
  __m512 u = _mm512_add_ps(_mm512_shuffle_f32x4(ab, cd, 0x88), _mm512_shuffle_f32x4(ab, cd, 0xDD));
  u = _mm512_add_ps(u, _mm512_permute_ps(u, _MM_SHUFFLE(1, 0, 3, 2)));
  u = _mm512_add_ps(u, _mm512_permute_ps(u, _MM_SHUFFLE(2, 3, 0, 1)));
  const __m512i first = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm512_castps512_ps128(_mm512_permutexvar_ps(first, u));
}

// finish() (gemm_bf16_internal.h) of the sums s into y[0, n), columns j .. j + n - 1 (n <= 4).
MEDGYM_AVX512_INLINE void finish4(float* y, __m128 s, int n, const Block& b, int64_t j) {
  const __mmask8 m = static_cast<__mmask8>((1u << n) - 1u);
  __m128 v = s;
  if (!b.first) v = _mm_add_ps(_mm_maskz_loadu_ps(m, y), v);
  else if (b.beta != 0.0f) v = _mm_fmadd_ps(_mm_set1_ps(b.beta), _mm_maskz_loadu_ps(m, y), v);
  if (b.last && b.bias) v = _mm_add_ps(v, _mm_maskz_loadu_ps(m, b.bias + j));
  _mm_mask_storeu_ps(y, m, v);
}

// Reduces and stores the RM x RN sums of the tile at rows i, columns j.
template <int RM, int RN>
MEDGYM_AVX512_INLINE void store_tile(const Block& b, int64_t i, int64_t j, __m512 (&acc)[RM][RN]) {
#pragma GCC unroll 4
  for (int r = 0; r < RM; ++r)
#pragma GCC unroll 4
    for (int q = 0; q < RN; q += 4) {
      const int n = RN - q < 4 ? RN - q : 4;  // columns past RN reduce a copy of the last one
      const __m128 s = reduce4(acc[r][q], acc[r][q + (n > 1)], acc[r][q + 2 * (n > 2)], acc[r][q + 3 * (n > 3)]);
      finish4(b.Y + (i + r) * b.ldy + j + q, s, n, b, j + q);
    }
}

// ---- the tiles ----------------------------------------------------------------------------------

MEDGYM_AVX512_INLINE __mmask32 tail_mask(int64_t n) { return static_cast<__mmask32>((1ull << n) - 1); }

template <bool kMasked>
MEDGYM_AVX512_INLINE __m512i load_w(const uint16_t* w, __mmask32 mask) {
  if (kMasked) return _mm512_maskz_loadu_epi16(mask, w);
  return _mm512_loadu_si512(w);
}

// One Exact step of the RM x RN sums: X rows at x + k (row stride kpad), W rows at w + k (stride ldw).
template <int RM, int RN, bool kMasked>
MEDGYM_AVX512_INLINE void step_exact(const float* x, int64_t kpad, const uint16_t* w, int64_t ldw, int64_t k,
                                     __mmask32 mask, __m512 (&acc)[RM][RN]) {
  const __m512i hi = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
  __m512 xe[RM], xo[RM];
#pragma GCC unroll 4
  for (int r = 0; r < RM; ++r) xe[r] = _mm512_load_ps(x + r * kpad + k), xo[r] = _mm512_load_ps(x + r * kpad + k + 16);
#pragma GCC unroll 16
  for (int q = 0; q < RN; ++q) {
    const __m512i v = load_w<kMasked>(w + q * ldw + k, mask);
    const __m512 we = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
    const __m512 wo = _mm512_castsi512_ps(_mm512_and_si512(v, hi));
#pragma GCC unroll 4
    for (int r = 0; r < RM; ++r) {
      acc[r][q] = _mm512_fmadd_ps(xe[r], we, acc[r][q]);
      acc[r][q] = _mm512_fmadd_ps(xo[r], wo, acc[r][q]);
    }
  }
}

// One Dpbf16 step (X rows of bf16).
template <int RM, int RN, bool kMasked>
MEDGYM_AVX512BF16_INLINE void step_dp(const uint16_t* x, int64_t kpad, const uint16_t* w, int64_t ldw, int64_t k,
                                      __mmask32 mask, __m512 (&acc)[RM][RN]) {
  __m512i xv[RM];
#pragma GCC unroll 4
  for (int r = 0; r < RM; ++r) xv[r] = _mm512_load_si512(x + r * kpad + k);
#pragma GCC unroll 16
  for (int q = 0; q < RN; ++q) {
    const __m512bh v = (__m512bh)load_w<kMasked>(w + q * ldw + k, mask);
#pragma GCC unroll 4
    for (int r = 0; r < RM; ++r) acc[r][q] = _mm512_dpbf16_ps(acc[r][q], (__m512bh)xv[r], v);
  }
}

// The RM x RN tile at rows i, columns j over the block's k range.
template <int RM, int RN>
MEDGYM_AVX512 void tile_exact(const Block& b, int64_t i, int64_t j) {
  const float* x = static_cast<const float*>(b.xp) + i * b.kpad + b.k0;
  const uint16_t* w = b.W + j * b.ldw + b.k0;
  __m512 acc[RM][RN];
#pragma GCC unroll 4
  for (int r = 0; r < RM; ++r)
#pragma GCC unroll 16
    for (int q = 0; q < RN; ++q) acc[r][q] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + kGroup <= b.kc; k += kGroup) step_exact<RM, RN, false>(x, b.kpad, w, b.ldw, k, 0, acc);
  if (k < b.kc) step_exact<RM, RN, true>(x, b.kpad, w, b.ldw, k, tail_mask(b.kc - k), acc);
  store_tile<RM, RN>(b, i, j, acc);
}

template <int RM, int RN>
MEDGYM_AVX512BF16 void tile_dp(const Block& b, int64_t i, int64_t j) {
  const uint16_t* x = static_cast<const uint16_t*>(b.xp) + i * b.kpad + b.k0;
  const uint16_t* w = b.W + j * b.ldw + b.k0;
  __m512 acc[RM][RN];
#pragma GCC unroll 4
  for (int r = 0; r < RM; ++r)
#pragma GCC unroll 16
    for (int q = 0; q < RN; ++q) acc[r][q] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + kGroup <= b.kc; k += kGroup) step_dp<RM, RN, false>(x, b.kpad, w, b.ldw, k, 0, acc);
  if (k < b.kc) step_dp<RM, RN, true>(x, b.kpad, w, b.ldw, k, tail_mask(b.kc - k), acc);
  store_tile<RM, RN>(b, i, j, acc);
}

// ---- blocks -------------------------------------------------------------------------------------

// Calls tile(Int<rm>, Int<rn>, i, j) over the block: 4-row tiles RN4 columns wide, then the last
// 1-3 rows as one tile of RN3 / RN2 / RN1 columns; narrower tiles (4, 2, 1) for the last columns.
// Rows outer: a tile row's packed X stays in L1 while the block's W rows (in L2) pass it.
template <int RN4, int RN3, int RN2, int RN1, typename Tile>
MEDGYM_AVX512_INLINE void for_tiles(const Block& b, Tile&& tile) {
  auto columns = [&](auto rm, auto rn, int64_t i) {
    int64_t j = b.j0;
    for (; j + rn.value <= b.j1; j += rn.value) tile(rm, rn, i, j);
    for (; j + 4 <= b.j1; j += 4) tile(rm, Int<4>(), i, j);
    for (; j + 2 <= b.j1; j += 2) tile(rm, Int<2>(), i, j);
    if (j < b.j1) tile(rm, Int<1>(), i, j);
  };
  int64_t i = 0;
  for (; i + 4 <= b.rows; i += 4) columns(Int<4>(), Int<RN4>(), i);
  switch (b.rows - i) {
    case 3: columns(Int<3>(), Int<RN3>(), i); break;
    case 2: columns(Int<2>(), Int<RN2>(), i); break;
    case 1: columns(Int<1>(), Int<RN1>(), i); break;
    default: break;
  }
}

MEDGYM_AVX512 void block_exact(const Block& b) {
  for_tiles<4, 4, 8, 8>(b, [&](auto rm, auto rn, int64_t i, int64_t j) { tile_exact<rm.value, rn.value>(b, i, j); });
}

MEDGYM_AVX512BF16 void block_dp(const Block& b) {
  for_tiles<6, 8, 12, 8>(b, [&](auto rm, auto rn, int64_t i, int64_t j) { tile_dp<rm.value, rn.value>(b, i, j); });
}

}  // namespace

const Bf16Impl& impl_avx512() {
  static const Bf16Impl impl{"avx512", kGroup, false, true, kKcMax, 192 << 10, pack_exact, block_exact};
  return impl;
}
const Bf16Impl& impl_avx512_dpbf16() {
  static const Bf16Impl impl{"avx512-bf16", kGroup, true, false, 2 * kKcMax, 384 << 10, pack_dp, block_dp};
  return impl;
}
#else
const Bf16Impl& impl_avx512() { return impl_portable(); }
const Bf16Impl& impl_avx512_dpbf16() { return impl_portable(); }
#endif

}  // namespace medgym::bf16_detail
