#include "cpu/adamw.h"

#include <cmath>

#include "cpu/cpu_features.h"
#include "cpu/simd.h"
#include "cpu/threadpool.h"

namespace medgym {

namespace {

constexpr int64_t kGrain = 1 << 14;

struct Consts {
  float decay, b1, c1, b2, c2, neg_step_size, bc2_sqrt, eps;
};

Consts consts(const AdamWParams& hp) {
  const double bc1 = 1.0 - std::pow(hp.beta1, double(hp.step));
  const double bc2 = 1.0 - std::pow(hp.beta2, double(hp.step));
  return {static_cast<float>(1.0 - hp.lr * hp.weight_decay), static_cast<float>(hp.beta1),
          static_cast<float>(1.0 - hp.beta1), static_cast<float>(hp.beta2), static_cast<float>(1.0 - hp.beta2),
          static_cast<float>(-(hp.lr / bc1)), static_cast<float>(std::sqrt(bc2)), static_cast<float>(hp.eps)};
}

// Each operation rounds to float as in torch: no FMA contraction in these functions (GCC would
// otherwise fuse the mul/add pairs, intrinsics included, under its default -ffp-contract=fast).
#if defined(__GNUC__) && !defined(__clang__)
#define MEDGYM_NO_CONTRACT __attribute__((optimize("fp-contract=off"), noinline))
#else
#define MEDGYM_NO_CONTRACT __attribute__((noinline))
#endif

// torch 1.13 single-tensor AdamW, operation by operation.
MEDGYM_NO_CONTRACT void adamw_scalar(float* p, const float* g, float* m, float* v, int64_t b, int64_t e, const Consts& k) {
  for (int64_t i = b; i < e; ++i) {
    const float pi = p[i] * k.decay;   // param.mul_(1 - lr*wd)
    const float mb = m[i] * k.b1;      // exp_avg.mul_(beta1)
    const float ga = k.c1 * g[i];
    const float mi = mb + ga;             //   .add_(grad, alpha=1-beta1)
    const float vb = v[i] * k.b2;      // exp_avg_sq.mul_(beta2)
    const float gg = k.c2 * g[i];
    const float gg2 = gg * g[i];
    const float vi = vb + gg2;            //   .addcmul_(grad, grad, value=1-beta2)
    m[i] = mi;
    v[i] = vi;
    const float den = std::sqrt(vi) / k.bc2_sqrt + k.eps;  // (v.sqrt() / bc2_sqrt).add_(eps)
    const float num = k.neg_step_size * mi;
    p[i] = pi + num / den;                // param.addcdiv_(exp_avg, denom, value=-step_size)
  }
}

#if MEDGYM_X86
MEDGYM_AVX2 MEDGYM_NO_CONTRACT void adamw_avx2(float* p, const float* g, float* m, float* v, int64_t b, int64_t e, const Consts& k) {
  const __m256 decay = _mm256_set1_ps(k.decay), b1 = _mm256_set1_ps(k.b1), c1 = _mm256_set1_ps(k.c1),
               b2 = _mm256_set1_ps(k.b2), c2 = _mm256_set1_ps(k.c2), nss = _mm256_set1_ps(k.neg_step_size),
               bs = _mm256_set1_ps(k.bc2_sqrt), eps = _mm256_set1_ps(k.eps);
  int64_t i = b;
  for (; i + 8 <= e; i += 8) {
    __m256 gi = _mm256_loadu_ps(g + i);
    __m256 mi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(m + i), b1), _mm256_mul_ps(c1, gi));
    __m256 vi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v + i), b2), _mm256_mul_ps(_mm256_mul_ps(c2, gi), gi));
    _mm256_storeu_ps(m + i, mi);
    _mm256_storeu_ps(v + i, vi);
    __m256 den = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), bs), eps);
    __m256 pi = _mm256_mul_ps(_mm256_loadu_ps(p + i), decay);
    _mm256_storeu_ps(p + i, _mm256_add_ps(pi, _mm256_div_ps(_mm256_mul_ps(nss, mi), den)));
  }
  adamw_scalar(p, g, m, v, i, e, k);
}
#endif

}  // namespace

void adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWParams& hp) {
  if (n <= 0) return;
  const Consts k = consts(hp);
  const bool vec = MEDGYM_X86 && simd_level() >= SimdLevel::Avx2Fma;
  parallel_for(n, [&](int64_t b, int64_t e) {
#if MEDGYM_X86
    if (vec) return adamw_avx2(param, grad, m, v, b, e, k);
#endif
    adamw_scalar(param, grad, m, v, b, e, k);
  }, kGrain);
}

void adamw_step_ref(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWParams& hp) {
  const double bc1 = 1.0 - std::pow(hp.beta1, double(hp.step));
  const double bc2 = 1.0 - std::pow(hp.beta2, double(hp.step));
  for (int64_t i = 0; i < n; ++i) {
    double g = grad[i];
    double p = double(param[i]) * (1.0 - double(hp.lr) * hp.weight_decay);
    double mi = hp.beta1 * double(m[i]) + (1.0 - hp.beta1) * g;
    double vi = hp.beta2 * double(v[i]) + (1.0 - hp.beta2) * g * g;
    m[i] = static_cast<float>(mi);
    v[i] = static_cast<float>(vi);
    param[i] = static_cast<float>(p - (hp.lr / bc1) * mi / (std::sqrt(vi) / std::sqrt(bc2) + hp.eps));
  }
}

}  // namespace medgym
