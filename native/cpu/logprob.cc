#include "cpu/logprob.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <vector>

#include "cpu/cpu_features.h"
#include "cpu/simd.h"
#include "cpu/threadpool.h"

namespace medgym {

namespace {

// Below this, exp() is exactly 0 in float; clamping z - m here keeps -inf logits from producing
// -inf * 0 = NaN in the entropy sums without changing any finite result.
constexpr float kFloor = -100.0f;
// Rows up to this length take the two-pass forward (max, then sums), longer ones the online one.
constexpr int64_t kTwoPassMaxV = 4096;
constexpr int64_t kGrainElems = 1 << 14;  // logits per task: below this threading costs more than it saves

inline int64_t row_grain(int64_t V) { return std::max<int64_t>(1, kGrainElems / std::max<int64_t>(V, 1)); }

// Row statistics of z = x * inv_tau: m = max z, log_s = log sum e^(z-m), entropy (when asked).
// lse = m + log_s; log p_k = (z_k - m) - log_s.
struct Stats {
  float m, log_s, entropy;
};

// exp that is exactly 0 below -87.34, as simd::exp256/exp512 are, so every path agrees on which
// probabilities vanish.
inline float exp_flush(float x) { return x < -87.3365478515625f ? 0.0f : std::exp(x); }

// ---------------------------------------------------------------------------------------------
// Portable path: two passes (max, then sums) with std::exp, sums in double.
template <bool kEnt>
Stats row_stats_scalar(const float* x, int64_t V, float it) {
  float m = -FLT_MAX;
  for (int64_t k = 0; k < V; ++k) m = std::max(m, x[k] * it);
  double s = 0.0, w = 0.0;  // a serial float sum would lose ~1e-6 relative over long rows
  for (int64_t k = 0; k < V; ++k) {
    float t = std::max(x[k] * it - m, kFloor);
    float e = exp_flush(t);
    s += e;
    if (kEnt) w += static_cast<double>(e) * t;
  }
  float log_s = static_cast<float>(std::log(s));
  return {m, log_s, kEnt ? static_cast<float>(std::log(s) - w / s) : 0.0f};
}

// d(row) (+)= (-p_k (a + b (u_k + H))) / tau, u_k = z_k - lse; the caller adds a / tau at the target.
// The SIMD versions compute u_k = max(z_k, lse - 100) - lse: the same value as max(z_k - lse, -100),
// but the product z_k = x_k / tau then has a non-additive use, so the compiler cannot fuse it into
// an FMA with the subtraction; it is rounded exactly as in the forward (a V = 1 row then gets
// gradient exactly 0 at any temperature).
void row_grad_scalar(const float* x, int64_t V, float it, float lse, float a, float b, bool need_h, float* d,
                     bool acc) {
  float h = 0.0f;
  if (need_h) {
    double neg_h = 0.0;
    for (int64_t k = 0; k < V; ++k) {
      float u = std::max(x[k] * it - lse, kFloor);
      neg_h += static_cast<double>(exp_flush(u)) * u;
    }
    h = static_cast<float>(-neg_h);
  }
  for (int64_t k = 0; k < V; ++k) {
    float u = std::max(x[k] * it - lse, kFloor);
    float g = -exp_flush(u) * (a + b * (u + h)) * it;
    d[k] = acc ? d[k] + g : g;
  }
}

#if MEDGYM_X86
// ---------------------------------------------------------------------------------------------
// AVX2: 8 lanes x 4 independent accumulators. Each lane keeps its own running max m, s = sum
// e^(z-m) and w = sum e^(z-m)(z-m); when a block raises a lane's max, the lane's sums are rescaled
// by f = e^(m_old - m_new) (w' = f (w + d s), d = m_old - m_new). One pass over the row.
MEDGYM_AVX2 inline void online_update256(__m256 z, __m256 m, __m256& s, __m256& w, bool ent) {
  const __m256 fl = _mm256_set1_ps(kFloor);
  __m256 t = _mm256_max_ps(_mm256_sub_ps(z, m), fl);
  __m256 e = simd::exp256(t);
  s = _mm256_add_ps(s, e);
  if (ent) w = _mm256_fmadd_ps(e, t, w);
}

MEDGYM_AVX2 inline __m256 tail_mask256(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), idx));
}

template <bool kEnt>
MEDGYM_AVX2 Stats row_stats_online_avx2(const float* x, int64_t V, float it_s) {
  const __m256 it = _mm256_set1_ps(it_s), fl = _mm256_set1_ps(kFloor);
  __m256 m = _mm256_set1_ps(-FLT_MAX), nan = _mm256_setzero_ps();  // nan: lanes that saw a NaN
  __m256 s[4], w[4];
  for (int j = 0; j < 4; ++j) s[j] = w[j] = _mm256_setzero_ps();
  auto rescale = [&](__m256 mn) MEDGYM_AVX2 {
    __m256 d = _mm256_max_ps(_mm256_sub_ps(m, mn), fl);
    __m256 f = simd::exp256(d);
    for (int j = 0; j < 4; ++j) {
      if (kEnt) w[j] = _mm256_mul_ps(f, _mm256_fmadd_ps(d, s[j], w[j]));
      s[j] = _mm256_mul_ps(f, s[j]);
    }
    m = mn;
  };
  int64_t k = 0;
  for (; k + 32 <= V; k += 32) {
    __m256 z0 = _mm256_mul_ps(_mm256_loadu_ps(x + k), it), z1 = _mm256_mul_ps(_mm256_loadu_ps(x + k + 8), it);
    __m256 z2 = _mm256_mul_ps(_mm256_loadu_ps(x + k + 16), it), z3 = _mm256_mul_ps(_mm256_loadu_ps(x + k + 24), it);
    __m256 mn = _mm256_max_ps(m, _mm256_max_ps(_mm256_max_ps(z0, z1), _mm256_max_ps(z2, z3)));
    nan = _mm256_or_ps(nan, _mm256_or_ps(_mm256_cmp_ps(z0, z1, _CMP_UNORD_Q), _mm256_cmp_ps(z2, z3, _CMP_UNORD_Q)));
    if (_mm256_movemask_ps(_mm256_cmp_ps(mn, m, _CMP_GT_OQ))) rescale(mn);
    online_update256(z0, m, s[0], w[0], kEnt);
    online_update256(z1, m, s[1], w[1], kEnt);
    online_update256(z2, m, s[2], w[2], kEnt);
    online_update256(z3, m, s[3], w[3], kEnt);
  }
  for (; k < V; k += 8) {
    __m256 z;
    if (k + 8 <= V) {
      z = _mm256_mul_ps(_mm256_loadu_ps(x + k), it);
    } else {
      __m256 msk = tail_mask256(V - k);
      z = _mm256_mul_ps(_mm256_maskload_ps(x + k, _mm256_castps_si256(msk)), it);
      z = _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), z, msk);
    }
    __m256 mn = _mm256_max_ps(m, z);
    nan = _mm256_or_ps(nan, _mm256_cmp_ps(z, z, _CMP_UNORD_Q));
    if (_mm256_movemask_ps(_mm256_cmp_ps(mn, m, _CMP_GT_OQ))) rescale(mn);
    online_update256(z, m, s[0], w[0], kEnt);
  }
  if (_mm256_movemask_ps(nan)) return {NAN, NAN, NAN};  // max/exp would silently drop a NaN logit
  __m256 sv = _mm256_add_ps(_mm256_add_ps(s[0], s[1]), _mm256_add_ps(s[2], s[3]));
  __m256 wv = _mm256_add_ps(_mm256_add_ps(w[0], w[1]), _mm256_add_ps(w[2], w[3]));
  // Combine the lanes at the row max M.
  float M = simd::hmax256(m);
  __m256 d = _mm256_max_ps(_mm256_sub_ps(m, _mm256_set1_ps(M)), fl);
  __m256 f = simd::exp256(d);
  float S = simd::hsum256(_mm256_mul_ps(f, sv));
  float log_s = std::log(S);
  float ent = 0.0f;
  if (kEnt) ent = log_s - simd::hsum256(_mm256_mul_ps(f, _mm256_fmadd_ps(d, sv, wv))) / S;
  return {M, log_s, ent};
}

// Short rows (V <= kTwoPassMaxV, in L1/L2 after the first read) are faster in two passes: the max
// of x (no multiply: rounding x * (1/tau) is monotonic, so max z = max(x) / tau exactly), then the
// sums at that max, with no rescaling. Memory is still read once; the second pass hits the cache.
template <bool kEnt>
MEDGYM_AVX2 Stats row_stats_2p_avx2(const float* x, int64_t V, float it_s) {
  const __m256 ninf = _mm256_set1_ps(-INFINITY);
  __m256 m0 = ninf, m1 = ninf, nan = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= V; k += 16) {
    __m256 a = _mm256_loadu_ps(x + k), b = _mm256_loadu_ps(x + k + 8);
    nan = _mm256_or_ps(nan, _mm256_cmp_ps(a, b, _CMP_UNORD_Q));
    m0 = _mm256_max_ps(m0, a), m1 = _mm256_max_ps(m1, b);
  }
  for (; k < V; k += 8) {
    __m256 msk = tail_mask256(V - k);
    __m256 a = _mm256_blendv_ps(ninf, _mm256_maskload_ps(x + k, _mm256_castps_si256(msk)), msk);
    nan = _mm256_or_ps(nan, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
    m0 = _mm256_max_ps(m0, a);
  }
  if (_mm256_movemask_ps(nan)) return {NAN, NAN, NAN};
  const float M = simd::hmax256(_mm256_max_ps(m0, m1)) * it_s;
  const __m256 it = _mm256_set1_ps(it_s), mv = _mm256_set1_ps(M), mfl = _mm256_set1_ps(M + kFloor);
  __m256 s[4], w[4];
  for (int j = 0; j < 4; ++j) s[j] = w[j] = _mm256_setzero_ps();
  // t = max(z, M - 100) - M: max(z - M, -100), with z rounded as in the backward (no FMA).
  auto acc = [&](__m256 xv, int j) MEDGYM_AVX2 {
    __m256 t = _mm256_sub_ps(_mm256_max_ps(_mm256_mul_ps(xv, it), mfl), mv);
    __m256 e = simd::exp256(t);
    s[j] = _mm256_add_ps(s[j], e);
    if (kEnt) w[j] = _mm256_fmadd_ps(e, t, w[j]);
  };
  k = 0;
  for (; k + 32 <= V; k += 32) {
    acc(_mm256_loadu_ps(x + k), 0), acc(_mm256_loadu_ps(x + k + 8), 1);
    acc(_mm256_loadu_ps(x + k + 16), 2), acc(_mm256_loadu_ps(x + k + 24), 3);
  }
  for (; k < V; k += 8) {
    __m256 msk = tail_mask256(V - k);
    acc(_mm256_blendv_ps(ninf, _mm256_maskload_ps(x + k, _mm256_castps_si256(msk)), msk), 0);
  }
  float S = simd::hsum256(_mm256_add_ps(_mm256_add_ps(s[0], s[1]), _mm256_add_ps(s[2], s[3])));
  float log_s = std::log(S);
  float ent = 0.0f;
  if (kEnt) ent = log_s - simd::hsum256(_mm256_add_ps(_mm256_add_ps(w[0], w[1]), _mm256_add_ps(w[2], w[3]))) / S;
  return {M, log_s, ent};
}

template <bool kEnt>
MEDGYM_AVX2 Stats row_stats_avx2(const float* x, int64_t V, float it_s) {
  return V <= kTwoPassMaxV ? row_stats_2p_avx2<kEnt>(x, V, it_s) : row_stats_online_avx2<kEnt>(x, V, it_s);
}

MEDGYM_AVX2 inline __m256 grad256(__m256 x, __m256 it, __m256 lse, __m256 lse_fl, __m256 a, __m256 b, __m256 h, bool need_h) {
  __m256 u = _mm256_sub_ps(_mm256_max_ps(_mm256_mul_ps(x, it), lse_fl), lse);
  __m256 p = simd::exp256(u);
  __m256 c = need_h ? _mm256_fmadd_ps(b, _mm256_add_ps(u, h), a) : a;
  return _mm256_mul_ps(_mm256_mul_ps(p, c), it);  // negated by the caller
}

MEDGYM_AVX2 void row_grad_avx2(const float* x, int64_t V, float it_s, float lse_s, float a_s, float b_s,
                               bool need_h, float* d, bool acc) {
  const __m256 it = _mm256_set1_ps(it_s), lse = _mm256_set1_ps(lse_s), lse_fl = _mm256_set1_ps(lse_s + kFloor);
  float h_s = 0.0f;
  if (need_h) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= V; k += 16) {
      __m256 u0 = _mm256_sub_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_loadu_ps(x + k), it), lse_fl), lse);
      __m256 u1 = _mm256_sub_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_loadu_ps(x + k + 8), it), lse_fl), lse);
      acc0 = _mm256_fmadd_ps(simd::exp256(u0), u0, acc0);
      acc1 = _mm256_fmadd_ps(simd::exp256(u1), u1, acc1);
    }
    for (; k < V; k += 8) {
      __m256 msk = tail_mask256(V - k);
      __m256 xv = _mm256_maskload_ps(x + k, _mm256_castps_si256(msk));
      __m256 u = _mm256_sub_ps(_mm256_max_ps(_mm256_mul_ps(xv, it), lse_fl), lse);
      acc0 = _mm256_fmadd_ps(_mm256_and_ps(simd::exp256(u), msk), u, acc0);
    }
    h_s = -simd::hsum256(_mm256_add_ps(acc0, acc1));
  }
  const __m256 a = _mm256_set1_ps(a_s), b = _mm256_set1_ps(b_s), h = _mm256_set1_ps(h_s);
  int64_t k = 0;
  for (; k + 8 <= V; k += 8) {
    __m256 g = grad256(_mm256_loadu_ps(x + k), it, lse, lse_fl, a, b, h, need_h);
    g = acc ? _mm256_sub_ps(_mm256_loadu_ps(d + k), g) : _mm256_sub_ps(_mm256_setzero_ps(), g);
    _mm256_storeu_ps(d + k, g);
  }
  if (k < V) {
    __m256i msk = _mm256_castps_si256(tail_mask256(V - k));
    __m256 g = grad256(_mm256_maskload_ps(x + k, msk), it, lse, lse_fl, a, b, h, need_h);
    g = acc ? _mm256_sub_ps(_mm256_maskload_ps(d + k, msk), g) : _mm256_sub_ps(_mm256_setzero_ps(), g);
    _mm256_maskstore_ps(d + k, msk, g);
  }
}

// ---------------------------------------------------------------------------------------------
// AVX-512: the same with 16 lanes and masked tails.
// gcc 12 warns about _mm512_undefined_ps() inside the intrinsics under target attributes (a known
// false positive); silence it for this section only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
MEDGYM_AVX512 inline void online_update512(__m512 z, __m512 m, __m512& s, __m512& w, bool ent) {
  __m512 t = _mm512_max_ps(_mm512_sub_ps(z, m), _mm512_set1_ps(kFloor));
  __m512 e = simd::exp512(t);
  s = _mm512_add_ps(s, e);
  if (ent) w = _mm512_fmadd_ps(e, t, w);
}

// Horizontal sum / max (gcc 12's _mm512_reduce_* trip -Wmaybe-uninitialized).
MEDGYM_AVX512 inline float hsum512(__m512 v) {
  return simd::hsum256(_mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
}
MEDGYM_AVX512 inline float hmax512(__m512 v) {
  return simd::hmax256(_mm256_max_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
}

MEDGYM_AVX512 inline __mmask16 tail_mask512(int64_t n) {
  return static_cast<__mmask16>(n >= 16 ? 0xFFFF : ((1u << n) - 1));
}

template <bool kEnt>
MEDGYM_AVX512 Stats row_stats_online_avx512(const float* x, int64_t V, float it_s) {
  const __m512 it = _mm512_set1_ps(it_s), fl = _mm512_set1_ps(kFloor);
  __m512 m = _mm512_set1_ps(-FLT_MAX);
  __mmask16 nan = 0;  // lanes that saw a NaN
  __m512 s[4], w[4];
  for (int j = 0; j < 4; ++j) s[j] = w[j] = _mm512_setzero_ps();
  auto rescale = [&](__m512 mn) MEDGYM_AVX512 {
    __m512 d = _mm512_max_ps(_mm512_sub_ps(m, mn), fl);
    __m512 f = simd::exp512(d);
    for (int j = 0; j < 4; ++j) {
      if (kEnt) w[j] = _mm512_mul_ps(f, _mm512_fmadd_ps(d, s[j], w[j]));
      s[j] = _mm512_mul_ps(f, s[j]);
    }
    m = mn;
  };
  int64_t k = 0;
  for (; k + 64 <= V; k += 64) {
    __m512 z0 = _mm512_mul_ps(_mm512_loadu_ps(x + k), it), z1 = _mm512_mul_ps(_mm512_loadu_ps(x + k + 16), it);
    __m512 z2 = _mm512_mul_ps(_mm512_loadu_ps(x + k + 32), it), z3 = _mm512_mul_ps(_mm512_loadu_ps(x + k + 48), it);
    __m512 mn = _mm512_max_ps(m, _mm512_max_ps(_mm512_max_ps(z0, z1), _mm512_max_ps(z2, z3)));
    nan |= _mm512_cmp_ps_mask(z0, z1, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(z2, z3, _CMP_UNORD_Q);
    if (_mm512_cmp_ps_mask(mn, m, _CMP_GT_OQ)) rescale(mn);
    online_update512(z0, m, s[0], w[0], kEnt);
    online_update512(z1, m, s[1], w[1], kEnt);
    online_update512(z2, m, s[2], w[2], kEnt);
    online_update512(z3, m, s[3], w[3], kEnt);
  }
  for (; k < V; k += 16) {
    __m512 z = _mm512_mul_ps(_mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), tail_mask512(V - k), x + k), it);
    __m512 mn = _mm512_max_ps(m, z);
    nan |= _mm512_cmp_ps_mask(z, z, _CMP_UNORD_Q);
    if (_mm512_cmp_ps_mask(mn, m, _CMP_GT_OQ)) rescale(mn);
    online_update512(z, m, s[(k >> 4) & 3], w[(k >> 4) & 3], kEnt);
  }
  if (nan) return {NAN, NAN, NAN};  // max/exp would silently drop a NaN logit
  __m512 sv = _mm512_add_ps(_mm512_add_ps(s[0], s[1]), _mm512_add_ps(s[2], s[3]));
  __m512 wv = _mm512_add_ps(_mm512_add_ps(w[0], w[1]), _mm512_add_ps(w[2], w[3]));
  float M = hmax512(m);
  __m512 d = _mm512_max_ps(_mm512_sub_ps(m, _mm512_set1_ps(M)), fl);
  __m512 f = simd::exp512(d);
  float S = hsum512(_mm512_mul_ps(f, sv));
  float log_s = std::log(S);
  float ent = 0.0f;
  if (kEnt) ent = log_s - hsum512(_mm512_mul_ps(f, _mm512_fmadd_ps(d, sv, wv))) / S;
  return {M, log_s, ent};
}

template <bool kEnt>
MEDGYM_AVX512 Stats row_stats_2p_avx512(const float* x, int64_t V, float it_s) {
  const __m512 ninf = _mm512_set1_ps(-INFINITY);
  __m512 m0 = ninf, m1 = ninf;
  __mmask16 nan = 0;
  int64_t k = 0;
  for (; k + 32 <= V; k += 32) {
    __m512 a = _mm512_loadu_ps(x + k), b = _mm512_loadu_ps(x + k + 16);
    nan |= _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q);
    m0 = _mm512_max_ps(m0, a), m1 = _mm512_max_ps(m1, b);
  }
  for (; k < V; k += 16) {
    __m512 a = _mm512_mask_loadu_ps(ninf, tail_mask512(V - k), x + k);
    nan |= _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q);
    m0 = _mm512_max_ps(m0, a);
  }
  if (nan) return {NAN, NAN, NAN};
  const float M = hmax512(_mm512_max_ps(m0, m1)) * it_s;
  const __m512 it = _mm512_set1_ps(it_s), mv = _mm512_set1_ps(M), mfl = _mm512_set1_ps(M + kFloor);
  __m512 s[4], w[4];
  for (int j = 0; j < 4; ++j) s[j] = w[j] = _mm512_setzero_ps();
  auto acc = [&](__m512 xv, int j) MEDGYM_AVX512 {
    __m512 t = _mm512_sub_ps(_mm512_max_ps(_mm512_mul_ps(xv, it), mfl), mv);
    __m512 e = simd::exp512(t);
    s[j] = _mm512_add_ps(s[j], e);
    if (kEnt) w[j] = _mm512_fmadd_ps(e, t, w[j]);
  };
  k = 0;
  for (; k + 64 <= V; k += 64) {
    acc(_mm512_loadu_ps(x + k), 0), acc(_mm512_loadu_ps(x + k + 16), 1);
    acc(_mm512_loadu_ps(x + k + 32), 2), acc(_mm512_loadu_ps(x + k + 48), 3);
  }
  for (; k < V; k += 16) acc(_mm512_mask_loadu_ps(ninf, tail_mask512(V - k), x + k), 0);
  float S = hsum512(_mm512_add_ps(_mm512_add_ps(s[0], s[1]), _mm512_add_ps(s[2], s[3])));
  float log_s = std::log(S);
  float ent = 0.0f;
  if (kEnt) ent = log_s - hsum512(_mm512_add_ps(_mm512_add_ps(w[0], w[1]), _mm512_add_ps(w[2], w[3]))) / S;
  return {M, log_s, ent};
}

template <bool kEnt>
MEDGYM_AVX512 Stats row_stats_avx512(const float* x, int64_t V, float it_s) {
  return V <= kTwoPassMaxV ? row_stats_2p_avx512<kEnt>(x, V, it_s) : row_stats_online_avx512<kEnt>(x, V, it_s);
}

MEDGYM_AVX512 void row_grad_avx512(const float* x, int64_t V, float it_s, float lse_s, float a_s, float b_s,
                                   bool need_h, float* d, bool acc) {
  const __m512 it = _mm512_set1_ps(it_s), lse = _mm512_set1_ps(lse_s), lse_fl = _mm512_set1_ps(lse_s + kFloor);
  float h_s = 0.0f;
  if (need_h) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 32 <= V; k += 32) {
      __m512 u0 = _mm512_sub_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_loadu_ps(x + k), it), lse_fl), lse);
      __m512 u1 = _mm512_sub_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_loadu_ps(x + k + 16), it), lse_fl), lse);
      acc0 = _mm512_fmadd_ps(simd::exp512(u0), u0, acc0);
      acc1 = _mm512_fmadd_ps(simd::exp512(u1), u1, acc1);
    }
    for (; k < V; k += 16) {
      __mmask16 msk = tail_mask512(V - k);
      __m512 u = _mm512_sub_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(msk, x + k), it), lse_fl), lse);
      acc0 = _mm512_mask3_fmadd_ps(simd::exp512(u), u, acc0, msk);
    }
    h_s = -hsum512(_mm512_add_ps(acc0, acc1));
  }
  const __m512 a = _mm512_set1_ps(a_s), c0 = _mm512_set1_ps(b_s), h = _mm512_set1_ps(h_s);
  for (int64_t k = 0; k < V; k += 16) {
    __mmask16 msk = tail_mask512(V - k);
    __m512 u = _mm512_sub_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(msk, x + k), it), lse_fl), lse);
    __m512 p = simd::exp512(u);
    __m512 c = need_h ? _mm512_fmadd_ps(c0, _mm512_add_ps(u, h), a) : a;
    __m512 g = _mm512_mul_ps(_mm512_mul_ps(p, c), it);
    g = acc ? _mm512_sub_ps(_mm512_maskz_loadu_ps(msk, d + k), g) : _mm512_sub_ps(_mm512_setzero_ps(), g);
    _mm512_mask_storeu_ps(d + k, msk, g);
  }
}
#pragma GCC diagnostic pop
#endif

// The row kernels of the SIMD level in force (chosen once per call).
struct RowKernels {
  Stats (*stats)(const float*, int64_t, float);
  Stats (*stats_ent)(const float*, int64_t, float);
  void (*grad)(const float*, int64_t, float, float, float, float, bool, float*, bool);
};

RowKernels row_kernels() {
#if MEDGYM_X86
  SimdLevel level = simd_level();
  if (level >= SimdLevel::Avx512) return {row_stats_avx512<false>, row_stats_avx512<true>, row_grad_avx512};
  if (level >= SimdLevel::Avx2Fma) return {row_stats_avx2<false>, row_stats_avx2<true>, row_grad_avx2};
#endif
  return {row_stats_scalar<false>, row_stats_scalar<true>, row_grad_scalar};
}

// Double-precision row statistics for the references.
struct StatsRef {
  double lse, entropy;
};
StatsRef row_stats_ref(const float* x, int64_t V, double tau) {
  double m = -INFINITY;
  for (int64_t k = 0; k < V; ++k) m = std::max(m, x[k] / tau);
  double s = 0, w = 0;
  for (int64_t k = 0; k < V; ++k) {
    double t = x[k] / tau - m;
    double e = std::exp(t);
    s += e;
    if (e > 0) w += e * t;
  }
  return {m + std::log(s), std::log(s) - w / s};
}

}  // namespace

void logprob_forward(const float* logits, const int32_t* targets, int64_t N, int64_t V, float temperature,
                     float* logp, float* entropy, float* lse) {
  const RowKernels kr = row_kernels();
  const float it = 1.0f / temperature;
  parallel_for(N, [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      const int32_t t = targets[r];
      if (t < 0) {
        logp[r] = 0.0f;
        if (entropy) entropy[r] = 0.0f;
        if (lse) lse[r] = 0.0f;
        continue;
      }
      const float* x = logits + r * V;
      Stats st = entropy ? kr.stats_ent(x, V, it) : kr.stats(x, V, it);
      logp[r] = (x[t] * it - st.m) - st.log_s;
      if (entropy) entropy[r] = st.entropy;
      if (lse) lse[r] = st.m + st.log_s;
    }
  }, row_grain(V));
}

void logprob_backward(const float* logits, const int32_t* targets, const float* lse, const float* dlogp,
                      const float* dentropy, int64_t N, int64_t V, float temperature, float* dlogits,
                      bool accumulate) {
  const RowKernels kr = row_kernels();
  const float it = 1.0f / temperature;
  parallel_for(N, [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      const int32_t t = targets[r];
      const float a = (t >= 0 && dlogp) ? dlogp[r] : 0.0f;
      const float b = (t >= 0 && dentropy) ? dentropy[r] : 0.0f;
      float* d = dlogits + r * V;
      if (a == 0.0f && b == 0.0f) {  // ignored row or zero upstream gradient: nothing to add
        if (!accumulate) std::fill(d, d + V, 0.0f);
        continue;
      }
      const float* x = logits + r * V;
      float L;
      if (lse) {
        L = lse[r];
      } else {
        Stats st = kr.stats(x, V, it);
        L = st.m + st.log_s;
      }
      kr.grad(x, V, it, L, a, b, b != 0.0f, d, accumulate);
      d[t] += a * it;
    }
  }, row_grain(V));
}

void log_softmax_forward(const float* logits, int64_t N, int64_t V, float temperature, float* out) {
  const RowKernels kr = row_kernels();
  const float it = 1.0f / temperature;
  parallel_for(N, [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      const float* x = logits + r * V;
      float* o = out + r * V;
      Stats st = kr.stats(x, V, it);
      for (int64_t k = 0; k < V; ++k) o[k] = (x[k] * it - st.m) - st.log_s;  // auto-vectorized
    }
  }, row_grain(V));
}

void logprob_forward_ref(const float* logits, const int32_t* targets, int64_t N, int64_t V, float temperature,
                         float* logp, float* entropy, float* lse) {
  for (int64_t r = 0; r < N; ++r) {
    const int32_t t = targets[r];
    if (t < 0) {
      logp[r] = 0.0f;
      if (entropy) entropy[r] = 0.0f;
      if (lse) lse[r] = 0.0f;
      continue;
    }
    const float* x = logits + r * V;
    StatsRef st = row_stats_ref(x, V, temperature);
    logp[r] = static_cast<float>(x[t] / static_cast<double>(temperature) - st.lse);
    if (entropy) entropy[r] = static_cast<float>(st.entropy);
    if (lse) lse[r] = static_cast<float>(st.lse);
  }
}

void logprob_backward_ref(const float* logits, const int32_t* targets, const float* lse, const float* dlogp,
                          const float* dentropy, int64_t N, int64_t V, float temperature, float* dlogits,
                          bool accumulate) {
  const double tau = temperature;
  for (int64_t r = 0; r < N; ++r) {
    const int32_t t = targets[r];
    const float* x = logits + r * V;
    float* d = dlogits + r * V;
    const double a = (t >= 0 && dlogp) ? dlogp[r] : 0.0, b = (t >= 0 && dentropy) ? dentropy[r] : 0.0;
    if (t < 0) {
      if (!accumulate) std::fill(d, d + V, 0.0f);
      continue;
    }
    StatsRef st = row_stats_ref(x, V, tau);  // the reference always recomputes lse in double
    (void)lse;
    for (int64_t k = 0; k < V; ++k) {
      double u = x[k] / tau - st.lse, p = std::exp(u);
      double g = a * ((k == t ? 1.0 : 0.0) - p) / tau;
      if (p > 0) g -= b * p * (u + st.entropy) / tau;
      d[k] = static_cast<float>((accumulate ? d[k] : 0.0) + g);
    }
  }
}

void log_softmax_forward_ref(const float* logits, int64_t N, int64_t V, float temperature, float* out) {
  for (int64_t r = 0; r < N; ++r) {
    const float* x = logits + r * V;
    StatsRef st = row_stats_ref(x, V, temperature);
    for (int64_t k = 0; k < V; ++k) out[r * V + k] = static_cast<float>(x[k] / static_cast<double>(temperature) - st.lse);
  }
}

}  // namespace medgym
