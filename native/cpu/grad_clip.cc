#include "cpu/grad_clip.h"

#include <cmath>
#include <vector>

#include "cpu/cpu_features.h"
#include "cpu/simd.h"
#include "cpu/threadpool.h"

namespace medgym {

namespace {

constexpr int64_t kBlock = 4096;       // elements per partial sum (fixed: thread-count independent)
constexpr int64_t kBlocksPerTask = 4;  // blocks per thread at least
constexpr int64_t kScaleGrain = 1 << 14;

double block_ssq_scalar(const float* g, int64_t n) {
  double s[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int l = 0; l < 4; ++l) s[l] += double(g[i + l]) * g[i + l];
  for (; i < n; ++i) s[0] += double(g[i]) * g[i];
  return (s[0] + s[1]) + (s[2] + s[3]);
}

void scale_scalar(float* g, int64_t b, int64_t e, float c) {
  for (int64_t i = b; i < e; ++i) g[i] *= c;
}

#if MEDGYM_X86
// Same lane structure as block_ssq_scalar (4 double lanes, combined (0+1)+(2+3)), so both paths give
// the same bits; the squares are exact in double, so FMA changes nothing either.
MEDGYM_AVX2 double block_ssq_avx2(const float* g, int64_t n) {
  __m256d acc = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    __m256d x = _mm256_cvtps_pd(_mm_loadu_ps(g + i));
    acc = _mm256_fmadd_pd(x, x, acc);
  }
  alignas(32) double s[4];
  _mm256_store_pd(s, acc);
  for (; i < n; ++i) s[0] += double(g[i]) * g[i];
  return (s[0] + s[1]) + (s[2] + s[3]);
}

MEDGYM_AVX2 void scale_avx2(float* g, int64_t b, int64_t e, float c) {
  const __m256 vc = _mm256_set1_ps(c);
  int64_t i = b;
  for (; i + 8 <= e; i += 8) _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_loadu_ps(g + i), vc));
  scale_scalar(g, i, e, c);
}
#endif

}  // namespace

double grad_sum_squares(const float* const* arrays, const int64_t* lengths, int64_t count) {
  const bool vec = MEDGYM_X86 && simd_level() >= SimdLevel::Avx2Fma;
  double total = 0.0;
  std::vector<double> part;
  for (int64_t a = 0; a < count; ++a) {
    const float* g = arrays[a];
    const int64_t n = lengths[a], nb = (n + kBlock - 1) / kBlock;
    if (n <= 0) continue;
    part.assign(nb, 0.0);
    parallel_for(nb, [&](int64_t b0, int64_t b1) {
      for (int64_t blk = b0; blk < b1; ++blk) {
        const float* p = g + blk * kBlock;
        const int64_t len = std::min(kBlock, n - blk * kBlock);
#if MEDGYM_X86
        if (vec) {
          part[blk] = block_ssq_avx2(p, len);
          continue;
        }
#endif
        part[blk] = block_ssq_scalar(p, len);
      }
    }, kBlocksPerTask);
    for (int64_t blk = 0; blk < nb; ++blk) total += part[blk];
  }
  return total;
}

GradClipResult grad_clip(float* const* arrays, const int64_t* lengths, int64_t count, double max_norm) {
  const double norm = std::sqrt(grad_sum_squares(arrays, lengths, count));
  GradClipResult res{norm, 1.0, false, std::isfinite(norm)};
  if (!res.finite) return res;
  const double coef = max_norm / (norm + 1e-6);
  if (!(coef < 1.0)) return res;
  res.scale = coef;
  res.clipped = true;
  const float c = static_cast<float>(coef);
  const bool vec = MEDGYM_X86 && simd_level() >= SimdLevel::Avx2Fma;
  for (int64_t a = 0; a < count; ++a) {
    float* g = arrays[a];
    parallel_for(lengths[a], [&](int64_t b, int64_t e) {
#if MEDGYM_X86
      if (vec) return scale_avx2(g, b, e, c);
#endif
      scale_scalar(g, b, e, c);
    }, kScaleGrain);
  }
  return res;
}

GradClipResult grad_clip_ref(float* const* arrays, const int64_t* lengths, int64_t count, double max_norm) {
  double s = 0;
  for (int64_t a = 0; a < count; ++a)
    for (int64_t i = 0; i < lengths[a]; ++i) s += double(arrays[a][i]) * arrays[a][i];
  const double norm = std::sqrt(s);
  GradClipResult res{norm, 1.0, false, std::isfinite(norm)};
  if (!res.finite) return res;
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) {
    res.scale = coef;
    res.clipped = true;
    for (int64_t a = 0; a < count; ++a)
      for (int64_t i = 0; i < lengths[a]; ++i) arrays[a][i] = static_cast<float>(arrays[a][i] * coef);
  }
  return res;
}

}  // namespace medgym
