#include "cpu/attention_decode.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/cpu_features.h"
#include "cpu/simd.h"

namespace medgym {

void attention_decode_ref(int64_t H, int64_t Tq, int64_t Tk, int64_t hd, AttnViewOut out, float* lse, AttnView q,
                          AttnView k, AttnView v, float scale) {
  const int64_t past = Tk - Tq;
  std::vector<double> s(Tk);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < Tq; ++i) {
      const float* qi = q.data + i * q.st + h * q.sh;
      const int64_t n = past + i + 1;
      double m = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < n; ++j) {
        const float* kj = k.data + j * k.st + h * k.sh;
        double dot = 0;
        for (int64_t c = 0; c < hd; ++c) dot += static_cast<double>(qi[c]) * kj[c];
        s[j] = scale * dot;
        m = std::max(m, s[j]);
      }
      double z = 0;
      for (int64_t j = 0; j < n; ++j) z += (s[j] = std::exp(s[j] - m));
      float* o = out.data + i * out.st + h * out.sh;
      for (int64_t c = 0; c < hd; ++c) {
        double acc = 0;
        for (int64_t j = 0; j < n; ++j) acc += s[j] * v.data[j * v.st + h * v.sh + c];
        o[c] = static_cast<float>(acc / z);
      }
      if (lse) lse[h * Tq + i] = static_cast<float>(m + std::log(z));
    }
}

void attention_decode_paged_ref(int64_t nq, int64_t H, int64_t hd, const float* q, int64_t q_stride,
                                const int64_t* n_keys, const PagedKV& kv, float scale, float* out, int64_t out_stride,
                                float* lse) {
  for (int64_t i = 0; i < nq; ++i) {
    const int64_t n = n_keys[i];
    std::vector<std::pair<const KVExtent*, int64_t>> rows;  // extent and row of each key
    for (const KVExtent* e = kv.extents[i]; static_cast<int64_t>(rows.size()) < n; ++e)
      for (int64_t r = 0; r < e->rows && static_cast<int64_t>(rows.size()) < n; ++r) rows.push_back({e, r});
    auto at = [&](int64_t j, int64_t slot) { return rows[j].first->block + (slot * rows[j].first->cap + rows[j].second) * hd; };
    std::vector<double> s(n);
    for (int64_t h = 0; h < H; ++h) {
      const float* qh = q + i * q_stride + h * hd;
      double m = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < n; ++j) {
        const float* kj = at(j, kv.k_slot + h);
        double dot = 0;
        for (int64_t c = 0; c < hd; ++c) dot += static_cast<double>(qh[c]) * kj[c];
        s[j] = scale * dot;
        m = std::max(m, s[j]);
      }
      double z = 0;
      for (int64_t j = 0; j < n; ++j) z += (s[j] = std::exp(s[j] - m));
      float* o = out + i * out_stride + h * hd;
      for (int64_t c = 0; c < hd; ++c) {
        double acc = 0;
        for (int64_t j = 0; j < n; ++j) acc += s[j] * at(j, kv.v_slot + h)[c];
        o[c] = static_cast<float>(acc / z);
      }
      if (lse) lse[i * H + h] = static_cast<float>(m + std::log(z));
    }
  }
}

namespace {

// Scores of every head for query i against keys 0..n-1, then softmax and the weighted sum of values,
// key row by key row (all heads of a cached row are contiguous). Dot/Axpy are inlined per path.
#define MEDGYM_DECODE_BODY(DOT, AXPY)                                                                   \
  const int64_t past = Tk - Tq;                                                                        \
  for (int64_t i = 0; i < Tq; ++i) {                                                                   \
    const int64_t n = past + i + 1;                                                                    \
    const float* qi = q.data + i * q.st;                                                               \
    for (int64_t j = 0; j < n; ++j) {                                                                  \
      const float* kj = k.data + j * k.st;                                                             \
      for (int64_t h = 0; h < H; ++h) scores[h * n + j] = scale * DOT(qi + h * q.sh, kj + h * k.sh, hd); \
    }                                                                                                  \
    float* oi = out.data + i * out.st;                                                                 \
    for (int64_t h = 0; h < H; ++h) {                                                                  \
      float* s = scores + h * n;                                                                       \
      float m = -std::numeric_limits<float>::infinity();                                               \
      for (int64_t j = 0; j < n; ++j) m = std::max(m, s[j]);                                           \
      float z = 0;                                                                                     \
      for (int64_t j = 0; j < n; ++j) z += (s[j] = std::exp(s[j] - m));                                \
      const float inv = 1.0f / z;                                                                      \
      for (int64_t j = 0; j < n; ++j) s[j] *= inv;                                                     \
      if (lse) lse[h * Tq + i] = m + std::log(z);                                                      \
      for (int64_t c = 0; c < hd; ++c) oi[h * out.sh + c] = 0;                                         \
    }                                                                                                  \
    for (int64_t j = 0; j < n; ++j) {                                                                  \
      const float* vj = v.data + j * v.st;                                                             \
      for (int64_t h = 0; h < H; ++h) AXPY(oi + h * out.sh, vj + h * v.sh, scores[h * n + j], hd);     \
    }                                                                                                  \
  }

inline float dot_portable(const float* a, const float* b, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}
inline void axpy_portable(float* y, const float* x, float a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void decode_portable(int64_t H, int64_t Tq, int64_t Tk, int64_t hd, AttnViewOut out, float* lse, AttnView q,
                     AttnView k, AttnView v, float scale, float* scores) {
  MEDGYM_DECODE_BODY(dot_portable, axpy_portable)
}

#if MEDGYM_X86
MEDGYM_AVX2 inline float dot_avx2(const float* a, const float* b, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  float s = simd::hsum256(acc);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}
MEDGYM_AVX2 inline void axpy_avx2(float* y, const float* x, float a, int64_t n) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}
// [sum(a0), ..., sum(a7)]: eight horizontal sums at once.
MEDGYM_AVX2 inline __m256 hsum8x8(__m256 a0, __m256 a1, __m256 a2, __m256 a3, __m256 a4, __m256 a5, __m256 a6,
                                  __m256 a7) {
  __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
  __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(a4, a5), _mm256_hadd_ps(a6, a7));
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// hd a multiple of 8, at most 64: per head, q and the output accumulators stay in registers; scores
// of 8 keys are computed together and reduced with one transpose-add.
template <int NC>
MEDGYM_AVX2 void decode_avx2_regs(int64_t H, int64_t Tq, int64_t Tk, AttnViewOut out, float* lse, AttnView q, AttnView k,
                                  AttnView v, float scale, float* s) {
  const int64_t past = Tk - Tq;
  for (int64_t i = 0; i < Tq; ++i) {
    const int64_t n = past + i + 1;
    for (int64_t h = 0; h < H; ++h) {
      __m256 qv[NC];
      const float* qh = q.data + i * q.st + h * q.sh;
      for (int c = 0; c < NC; ++c) qv[c] = _mm256_loadu_ps(qh + 8 * c);
      const float* kh = k.data + h * k.sh;
      int64_t j = 0;
      __m256 vmax = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
      const __m256 vscale = _mm256_set1_ps(scale);
      for (; j + 8 <= n; j += 8) {
        __m256 acc[8];
        if (j + 16 + 8 <= n)
          for (int r = 0; r < 8; ++r)
            for (int c = 0; c < NC; c += 2) _mm_prefetch(reinterpret_cast<const char*>(kh + (j + 16 + r) * k.st + 8 * c), _MM_HINT_T0);
        for (int r = 0; r < 8; ++r) {
          const float* kr = kh + (j + r) * k.st;
          __m256 a = _mm256_mul_ps(qv[0], _mm256_loadu_ps(kr));
          for (int c = 1; c < NC; ++c) a = _mm256_fmadd_ps(qv[c], _mm256_loadu_ps(kr + 8 * c), a);
          acc[r] = a;
        }
        __m256 sc = _mm256_mul_ps(vscale, hsum8x8(acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6], acc[7]));
        _mm256_storeu_ps(s + j, sc);
        vmax = _mm256_max_ps(vmax, sc);
      }
      float m = simd::hmax256(vmax);
      for (; j < n; ++j) {
        const float* kr = kh + j * k.st;
        __m256 a = _mm256_mul_ps(qv[0], _mm256_loadu_ps(kr));
        for (int c = 1; c < NC; ++c) a = _mm256_fmadd_ps(qv[c], _mm256_loadu_ps(kr + 8 * c), a);
        s[j] = scale * simd::hsum256(a);
        m = std::max(m, s[j]);
      }
      __m256 vz = _mm256_setzero_ps();
      const __m256 vm = _mm256_set1_ps(m);
      int64_t t0 = 0;
      for (; t0 + 8 <= n; t0 += 8) {
        const __m256 e = simd::exp256(_mm256_sub_ps(_mm256_loadu_ps(s + t0), vm));
        _mm256_storeu_ps(s + t0, e);
        vz = _mm256_add_ps(vz, e);
      }
      float z = simd::hsum256(vz);
      for (; t0 < n; ++t0) z += (s[t0] = std::exp(s[t0] - m));
      const float inv = 1.0f / z;
      if (lse) lse[h * Tq + i] = m + std::log(z);
      __m256 o[NC];
      for (int c = 0; c < NC; ++c) o[c] = _mm256_setzero_ps();
      const float* vh = v.data + h * v.sh;
      for (int64_t t = 0; t < n; ++t) {
        if (t + 16 < n)
          for (int c = 0; c < NC; c += 2) _mm_prefetch(reinterpret_cast<const char*>(vh + (t + 16) * v.st + 8 * c), _MM_HINT_T0);
        const __m256 p = _mm256_set1_ps(s[t]);
        const float* vr = vh + t * v.st;
        for (int c = 0; c < NC; ++c) o[c] = _mm256_fmadd_ps(p, _mm256_loadu_ps(vr + 8 * c), o[c]);
      }
      float* oh = out.data + i * out.st + h * out.sh;
      const __m256 vinv = _mm256_set1_ps(inv);
      for (int c = 0; c < NC; ++c) _mm256_storeu_ps(oh + 8 * c, _mm256_mul_ps(o[c], vinv));
    }
  }
}

// AVX-512: hd a multiple of 16 (at most 128); q and the output in zmm registers (32 of them, no
// spills at hd 64/128), the 8-key score tile reduced zmm -> ymm -> one transpose-add.
// (GCC 12 warns about an internal undefined value in the 512 -> 256 extract, as in gemm.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
MEDGYM_AVX512 inline __m256 fold512(__m512 a) {
  return _mm256_add_ps(_mm512_castps512_ps256(a), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
}
#pragma GCC diagnostic pop

template <int NC>
MEDGYM_AVX512 void decode_avx512_regs(int64_t H, int64_t Tq, int64_t Tk, AttnViewOut out, float* lse, AttnView q,
                                      AttnView k, AttnView v, float scale, float* s) {
  const int64_t past = Tk - Tq;
  for (int64_t i = 0; i < Tq; ++i) {
    const int64_t n = past + i + 1;
    for (int64_t h = 0; h < H; ++h) {
      __m512 qv[NC];
      const float* qh = q.data + i * q.st + h * q.sh;
      for (int c = 0; c < NC; ++c) qv[c] = _mm512_loadu_ps(qh + 16 * c);
      const float* kh = k.data + h * k.sh;
      int64_t j = 0;
      __m256 vmax = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
      const __m256 vscale = _mm256_set1_ps(scale);
      for (; j + 8 <= n; j += 8) {
        if (j + 24 <= n)
          for (int r = 0; r < 8; ++r)
            for (int c = 0; c < NC; ++c) _mm_prefetch(reinterpret_cast<const char*>(kh + (j + 16 + r) * k.st + 16 * c), _MM_HINT_T0);
        __m256 acc[8];
        for (int r = 0; r < 8; ++r) {
          const float* kr = kh + (j + r) * k.st;
          __m512 a = _mm512_mul_ps(qv[0], _mm512_loadu_ps(kr));
          for (int c = 1; c < NC; ++c) a = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(kr + 16 * c), a);
          acc[r] = fold512(a);
        }
        __m256 sc = _mm256_mul_ps(vscale, hsum8x8(acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6], acc[7]));
        _mm256_storeu_ps(s + j, sc);
        vmax = _mm256_max_ps(vmax, sc);
      }
      float m = simd::hmax256(vmax);
      for (; j < n; ++j) {
        const float* kr = kh + j * k.st;
        __m512 a = _mm512_mul_ps(qv[0], _mm512_loadu_ps(kr));
        for (int c = 1; c < NC; ++c) a = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(kr + 16 * c), a);
        s[j] = scale * simd::hsum256(fold512(a));
        m = std::max(m, s[j]);
      }
      __m256 vz = _mm256_setzero_ps();
      const __m256 vm = _mm256_set1_ps(m);
      int64_t t0 = 0;
      for (; t0 + 8 <= n; t0 += 8) {
        const __m256 e = simd::exp256(_mm256_sub_ps(_mm256_loadu_ps(s + t0), vm));
        _mm256_storeu_ps(s + t0, e);
        vz = _mm256_add_ps(vz, e);
      }
      float z = simd::hsum256(vz);
      for (; t0 < n; ++t0) z += (s[t0] = std::exp(s[t0] - m));
      const float inv = 1.0f / z;
      if (lse) lse[h * Tq + i] = m + std::log(z);
      __m512 o[NC];
      for (int c = 0; c < NC; ++c) o[c] = _mm512_setzero_ps();
      const float* vh = v.data + h * v.sh;
      for (int64_t t = 0; t < n; ++t) {
        if (t + 16 < n)
          for (int c = 0; c < NC; ++c) _mm_prefetch(reinterpret_cast<const char*>(vh + (t + 16) * v.st + 16 * c), _MM_HINT_T0);
        const __m512 p = _mm512_set1_ps(s[t]);
        const float* vr = vh + t * v.st;
        for (int c = 0; c < NC; ++c) o[c] = _mm512_fmadd_ps(p, _mm512_loadu_ps(vr + 16 * c), o[c]);
      }
      float* oh = out.data + i * out.st + h * out.sh;
      const __m512 vinv = _mm512_set1_ps(inv);
      for (int c = 0; c < NC; ++c) _mm512_storeu_ps(oh + 16 * c, _mm512_mul_ps(o[c], vinv));
    }
  }
}

MEDGYM_AVX2 void decode_avx2(int64_t H, int64_t Tq, int64_t Tk, int64_t hd, AttnViewOut out, float* lse, AttnView q,
                             AttnView k, AttnView v, float scale, float* scores) {
  switch (hd) {
    case 8: return decode_avx2_regs<1>(H, Tq, Tk, out, lse, q, k, v, scale, scores);
    case 16: return decode_avx2_regs<2>(H, Tq, Tk, out, lse, q, k, v, scale, scores);
    case 32: return decode_avx2_regs<4>(H, Tq, Tk, out, lse, q, k, v, scale, scores);
    case 64: return decode_avx2_regs<8>(H, Tq, Tk, out, lse, q, k, v, scale, scores);
    default: break;
  }
  MEDGYM_DECODE_BODY(dot_avx2, axpy_avx2)
}
#endif

// ---- paged decode: one head of one query over its extents --------------------------------------
// Scores (8 keys at a time from absolute key 0, the last n % 8 one by one), one max, the exps in
// place, then the values in key order: the same operations whatever the extents, as long as every
// extent but the last holds a multiple of 8 rows. s: n floats of scratch.
using PagedHeadFn = void (*)(const float* qh, const KVExtent* ext, int64_t n, int64_t hd, int64_t k_slot, int64_t v_slot,
                             float scale, float* s, float* out, float* lse);

void paged_head_portable(const float* qh, const KVExtent* ext, int64_t n, int64_t hd, int64_t k_slot, int64_t v_slot,
                         float scale, float* s, float* out, float* lse) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0, e = 0; j < n; ++e)
    for (int64_t r = 0, rows = std::min(ext[e].rows, n - j); r < rows; ++r, ++j)
      m = std::max(m, s[j] = scale * dot_portable(qh, ext[e].block + (k_slot * ext[e].cap + r) * hd, hd));
  float z = 0;
  for (int64_t j = 0; j < n; ++j) z += (s[j] = std::exp(s[j] - m));
  for (int64_t c = 0; c < hd; ++c) out[c] = 0;
  for (int64_t j = 0, e = 0; j < n; ++e)
    for (int64_t r = 0, rows = std::min(ext[e].rows, n - j); r < rows; ++r, ++j)
      axpy_portable(out, ext[e].block + (v_slot * ext[e].cap + r) * hd, s[j], hd);
  const float inv = 1.0f / z;
  for (int64_t c = 0; c < hd; ++c) out[c] *= inv;
  if (lse) *lse = m + std::log(z);
}

#if MEDGYM_X86
// exp(s[j] - m) in place for j < n (8 at a time, then one by one); returns their sum.
MEDGYM_AVX2 inline float exp_shift_sum(float* s, int64_t n, float m) {
  __m256 vz = _mm256_setzero_ps();
  const __m256 vm = _mm256_set1_ps(m);
  int64_t t = 0;
  for (; t + 8 <= n; t += 8) {
    const __m256 e = simd::exp256(_mm256_sub_ps(_mm256_loadu_ps(s + t), vm));
    _mm256_storeu_ps(s + t, e);
    vz = _mm256_add_ps(vz, e);
  }
  float z = simd::hsum256(vz);
  for (; t < n; ++t) z += (s[t] = std::exp(s[t] - m));
  return z;
}

// Rows fetched ahead in software, as in the kernels above, into the next extent near an extent's end
// (measured: without, long contexts decode ~1.3× slower in rollouts).
constexpr int64_t kAhead = 16;
// `count` rows of a slot from row `r` of extent e (whose row 0 is key j) on, into the next extents.
MEDGYM_AVX2 inline void prefetch_rows(const KVExtent* ext, int64_t e, int64_t j, int64_t r, int64_t n, int64_t slot,
                                      int64_t hd, int64_t count) {
  if (j + r >= n) return;
  while (r >= ext[e].rows) r -= ext[e++].rows;
  const char* p = reinterpret_cast<const char*>(ext[e].block + (slot * ext[e].cap + r) * hd);
  const int64_t bytes = std::min(count, ext[e].rows - r) * hd * static_cast<int64_t>(sizeof(float));
  for (int64_t b = 0; b < bytes; b += 64) _mm_prefetch(p + b, _MM_HINT_T0);
}

// hd = 8 * NC (AVX2) or 16 * NC (AVX-512): q and the output accumulators stay in registers; the
// scores of 8 keys are reduced with one transpose-add. The value pass keeps two accumulator sets
// (even and odd keys: extents start at multiples of 8) to halve the FMA dependency chain.
template <int NC>
MEDGYM_AVX2 void paged_head_avx2(const float* qh, const KVExtent* ext, int64_t n, int64_t, int64_t k_slot, int64_t v_slot,
                                 float scale, float* s, float* out, float* lse) {
  constexpr int64_t hd = 8 * NC;
  __m256 qv[NC];
  for (int c = 0; c < NC; ++c) qv[c] = _mm256_loadu_ps(qh + 8 * c);
  const __m256 vscale = _mm256_set1_ps(scale);
  __m256 vmax = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0, e = 0; j < n; ++e) {
    const int64_t rows = std::min(ext[e].rows, n - j);
    const float* kb = ext[e].block + k_slot * ext[e].cap * hd;
    int64_t r = 0;
    for (; r + 8 <= rows; r += 8) {
      prefetch_rows(ext, e, j, r + kAhead, n, k_slot, hd, 8);
      __m256 acc[8];
      for (int u = 0; u < 8; ++u) {
        const float* kr = kb + (r + u) * hd;
        __m256 a = _mm256_mul_ps(qv[0], _mm256_loadu_ps(kr));
        for (int c = 1; c < NC; ++c) a = _mm256_fmadd_ps(qv[c], _mm256_loadu_ps(kr + 8 * c), a);
        acc[u] = a;
      }
      const __m256 sc = _mm256_mul_ps(vscale, hsum8x8(acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6], acc[7]));
      _mm256_storeu_ps(s + j + r, sc);
      vmax = _mm256_max_ps(vmax, sc);
    }
    for (; r < rows; ++r) {  // the last n % 8 keys
      const float* kr = kb + r * hd;
      __m256 a = _mm256_mul_ps(qv[0], _mm256_loadu_ps(kr));
      for (int c = 1; c < NC; ++c) a = _mm256_fmadd_ps(qv[c], _mm256_loadu_ps(kr + 8 * c), a);
      m = std::max(m, s[j + r] = scale * simd::hsum256(a));
    }
    j += rows;
  }
  m = std::max(m, simd::hmax256(vmax));
  const float z = exp_shift_sum(s, n, m);
  __m256 o0[NC], o1[NC];
  for (int c = 0; c < NC; ++c) o0[c] = o1[c] = _mm256_setzero_ps();
  for (int64_t j = 0, e = 0; j < n; ++e) {
    const int64_t rows = std::min(ext[e].rows, n - j);
    const float* vb = ext[e].block + v_slot * ext[e].cap * hd;
    int64_t r = 0;
    for (; r + 2 <= rows; r += 2) {  // extents start at even keys: o0 takes the even ones, o1 the odd
      if ((r & 7) == 0) prefetch_rows(ext, e, j, r + kAhead, n, v_slot, hd, 8);
      const __m256 p0 = _mm256_set1_ps(s[j + r]), p1 = _mm256_set1_ps(s[j + r + 1]);
      const float* vr = vb + r * hd;
      for (int c = 0; c < NC; ++c) {
        o0[c] = _mm256_fmadd_ps(p0, _mm256_loadu_ps(vr + 8 * c), o0[c]);
        o1[c] = _mm256_fmadd_ps(p1, _mm256_loadu_ps(vr + hd + 8 * c), o1[c]);
      }
    }
    if (r < rows) {  // the last key, even
      const __m256 p = _mm256_set1_ps(s[j + r]);
      for (int c = 0; c < NC; ++c) o0[c] = _mm256_fmadd_ps(p, _mm256_loadu_ps(vb + r * hd + 8 * c), o0[c]);
    }
    j += rows;
  }
  const __m256 vinv = _mm256_set1_ps(1.0f / z);
  for (int c = 0; c < NC; ++c) _mm256_storeu_ps(out + 8 * c, _mm256_mul_ps(_mm256_add_ps(o0[c], o1[c]), vinv));
  if (lse) *lse = m + std::log(z);
}

template <int NC>
MEDGYM_AVX512 void paged_head_avx512(const float* qh, const KVExtent* ext, int64_t n, int64_t, int64_t k_slot,
                                     int64_t v_slot, float scale, float* s, float* out, float* lse) {
  constexpr int64_t hd = 16 * NC;
  __m512 qv[NC];
  for (int c = 0; c < NC; ++c) qv[c] = _mm512_loadu_ps(qh + 16 * c);
  const __m256 vscale = _mm256_set1_ps(scale);
  __m256 vmax = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0, e = 0; j < n; ++e) {
    const int64_t rows = std::min(ext[e].rows, n - j);
    const float* kb = ext[e].block + k_slot * ext[e].cap * hd;
    int64_t r = 0;
    for (; r + 8 <= rows; r += 8) {
      prefetch_rows(ext, e, j, r + kAhead, n, k_slot, hd, 8);
      __m256 acc[8];
      for (int u = 0; u < 8; ++u) {
        const float* kr = kb + (r + u) * hd;
        __m512 a = _mm512_mul_ps(qv[0], _mm512_loadu_ps(kr));
        for (int c = 1; c < NC; ++c) a = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(kr + 16 * c), a);
        acc[u] = fold512(a);
      }
      const __m256 sc = _mm256_mul_ps(vscale, hsum8x8(acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6], acc[7]));
      _mm256_storeu_ps(s + j + r, sc);
      vmax = _mm256_max_ps(vmax, sc);
    }
    for (; r < rows; ++r) {  // the last n % 8 keys
      const float* kr = kb + r * hd;
      __m512 a = _mm512_mul_ps(qv[0], _mm512_loadu_ps(kr));
      for (int c = 1; c < NC; ++c) a = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(kr + 16 * c), a);
      m = std::max(m, s[j + r] = scale * simd::hsum256(fold512(a)));
    }
    j += rows;
  }
  m = std::max(m, simd::hmax256(vmax));
  const float z = exp_shift_sum(s, n, m);
  __m512 o0[NC], o1[NC];
  for (int c = 0; c < NC; ++c) o0[c] = o1[c] = _mm512_setzero_ps();
  for (int64_t j = 0, e = 0; j < n; ++e) {
    const int64_t rows = std::min(ext[e].rows, n - j);
    const float* vb = ext[e].block + v_slot * ext[e].cap * hd;
    int64_t r = 0;
    for (; r + 2 <= rows; r += 2) {  // extents start at even keys: o0 takes the even ones, o1 the odd
      if ((r & 7) == 0) prefetch_rows(ext, e, j, r + kAhead, n, v_slot, hd, 8);
      const __m512 p0 = _mm512_set1_ps(s[j + r]), p1 = _mm512_set1_ps(s[j + r + 1]);
      const float* vr = vb + r * hd;
      for (int c = 0; c < NC; ++c) {
        o0[c] = _mm512_fmadd_ps(p0, _mm512_loadu_ps(vr + 16 * c), o0[c]);
        o1[c] = _mm512_fmadd_ps(p1, _mm512_loadu_ps(vr + hd + 16 * c), o1[c]);
      }
    }
    if (r < rows) {  // the last key, even
      const __m512 p = _mm512_set1_ps(s[j + r]);
      for (int c = 0; c < NC; ++c) o0[c] = _mm512_fmadd_ps(p, _mm512_loadu_ps(vb + r * hd + 16 * c), o0[c]);
    }
    j += rows;
  }
  const __m512 vinv = _mm512_set1_ps(1.0f / z);
  for (int c = 0; c < NC; ++c) _mm512_storeu_ps(out + 16 * c, _mm512_mul_ps(_mm512_add_ps(o0[c], o1[c]), vinv));
  if (lse) *lse = m + std::log(z);
}
#endif

PagedHeadFn paged_head_fn(int64_t hd) {
#if MEDGYM_X86
  if (simd_level() >= SimdLevel::Avx512) {
    switch (hd) {
      case 16: return paged_head_avx512<1>;
      case 32: return paged_head_avx512<2>;
      case 64: return paged_head_avx512<4>;
      case 128: return paged_head_avx512<8>;
      default: break;
    }
  }
  if (simd_level() >= SimdLevel::Avx2Fma) {
    switch (hd) {
      case 8: return paged_head_avx2<1>;
      case 16: return paged_head_avx2<2>;
      case 32: return paged_head_avx2<4>;
      case 64: return paged_head_avx2<8>;
      default: break;
    }
  }
#endif
  return paged_head_portable;
}

}  // namespace

void attention_decode(int64_t H, int64_t Tq, int64_t Tk, int64_t hd, AttnViewOut out, float* lse, AttnView q,
                      AttnView k, AttnView v, float scale, float* scores) {
#if MEDGYM_X86
  if (simd_level() >= SimdLevel::Avx512) {
    switch (hd) {
      case 16: return decode_avx512_regs<1>(H, Tq, Tk, out, lse, q, k, v, scale, scores);
      case 32: return decode_avx512_regs<2>(H, Tq, Tk, out, lse, q, k, v, scale, scores);
      case 64: return decode_avx512_regs<4>(H, Tq, Tk, out, lse, q, k, v, scale, scores);
      case 128: return decode_avx512_regs<8>(H, Tq, Tk, out, lse, q, k, v, scale, scores);
      default: break;
    }
  }
  if (simd_level() >= SimdLevel::Avx2Fma) return decode_avx2(H, Tq, Tk, hd, out, lse, q, k, v, scale, scores);
#endif
  decode_portable(H, Tq, Tk, hd, out, lse, q, k, v, scale, scores);
}

void attention_decode_paged(int64_t nq, int64_t H, int64_t hd, const float* q, int64_t q_stride, const int64_t* n_keys,
                            const PagedKV& kv, float scale, float* out, int64_t out_stride, float* lse, float* scratch) {
  const PagedHeadFn head = paged_head_fn(hd);
  for (int64_t i = 0; i < nq; ++i)
    for (int64_t h = 0; h < H; ++h)
      head(q + i * q_stride + h * hd, kv.extents[i], n_keys[i], hd, kv.k_slot + h, kv.v_slot + h, scale,
           scratch, out + i * out_stride + h * hd, lse ? lse + i * H + h : nullptr);
}

}  // namespace medgym
