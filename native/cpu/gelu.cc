#include "cpu/gelu.h"

#include <cmath>

#include "cpu/cpu_features.h"
#include "cpu/simd.h"
#include "cpu/threadpool.h"

namespace medgym {

namespace {

constexpr float kS = 0.7978845608028654f;  // sqrt(2/pi)
constexpr float kC = 0.044715f;
constexpr int64_t kGrain = 1 << 14;  // elements per task: below this threading costs more than it saves
// Chunks start at multiples of kAlign so every element takes the same (vector or scalar-tail) path
// whatever the thread count: results are bit-identical across thread counts.
constexpr int64_t kAlign = 16;

template <typename Fn>
void parallel_aligned(int64_t n, const Fn& fn) {
  parallel_for((n + kAlign - 1) / kAlign, [&](int64_t b, int64_t e) {
    fn(b * kAlign, e * kAlign < n ? e * kAlign : n);
  }, kGrain / kAlign);
}

inline void gelu_fwd_scalar(float* out, const float* inp, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) {
    float x = inp[i];
    out[i] = x / (1.0f + std::exp(-2.0f * kS * (x + kC * x * x * x)));
  }
}

inline void gelu_bwd_scalar(float* dinp, const float* inp, const float* dout, int64_t b, int64_t e, bool acc) {
  for (int64_t i = b; i < e; ++i) {
    float x = inp[i];
    float sg = 1.0f / (1.0f + std::exp(-2.0f * kS * (x + kC * x * x * x)));
    float g = sg + x * sg * (1.0f - sg) * 2.0f * kS * (1.0f + 3.0f * kC * x * x);
    dinp[i] = (acc ? dinp[i] : 0.0f) + g * dout[i];
  }
}

#if MEDGYM_X86
// 0.5 (1 + tanh(u)) = sigmoid(2u); this form keeps full relative precision in the negative tail,
// where 1 + tanh(u) cancels to 0 in float32.
MEDGYM_AVX2 inline __m256 sigmoid2u(__m256 x, __m256 x2) {
  const __m256 m2s = _mm256_set1_ps(-2.0f * kS), c = _mm256_set1_ps(kC), one = _mm256_set1_ps(1.0f);
  __m256 u = _mm256_fmadd_ps(_mm256_mul_ps(c, x2), x, x);
  return _mm256_div_ps(one, _mm256_add_ps(one, simd::exp256(_mm256_mul_ps(m2s, u))));
}

MEDGYM_AVX2 void gelu_fwd_avx2(float* out, const float* inp, int64_t b, int64_t e) {
  int64_t i = b;
  for (; i + 8 <= e; i += 8) {
    __m256 x = _mm256_loadu_ps(inp + i);
    _mm256_storeu_ps(out + i, _mm256_mul_ps(x, sigmoid2u(x, _mm256_mul_ps(x, x))));
  }
  gelu_fwd_scalar(out, inp, i, e);
}

MEDGYM_AVX2 void gelu_bwd_avx2(float* dinp, const float* inp, const float* dout, int64_t b, int64_t e, bool acc) {
  const __m256 two_s = _mm256_set1_ps(2.0f * kS), c3 = _mm256_set1_ps(3.0f * kC), one = _mm256_set1_ps(1.0f);
  int64_t i = b;
  for (; i + 8 <= e; i += 8) {
    __m256 x = _mm256_loadu_ps(inp + i);
    __m256 x2 = _mm256_mul_ps(x, x);
    __m256 sg = sigmoid2u(x, x2);
    __m256 du = _mm256_mul_ps(two_s, _mm256_fmadd_ps(c3, x2, one));  // d(2u)/dx
    __m256 g = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_mul_ps(x, sg), _mm256_sub_ps(one, sg)), du, sg);
    __m256 d = _mm256_mul_ps(g, _mm256_loadu_ps(dout + i));
    if (acc) d = _mm256_add_ps(d, _mm256_loadu_ps(dinp + i));
    _mm256_storeu_ps(dinp + i, d);
  }
  gelu_bwd_scalar(dinp, inp, dout, i, e, acc);
}
#endif

}  // namespace

void gelu_forward(float* out, const float* inp, int64_t n) {
  const bool vec = MEDGYM_X86 && simd_level() >= SimdLevel::Avx2Fma;
  parallel_aligned(n, [&](int64_t b, int64_t e) {
#if MEDGYM_X86
    if (vec) return gelu_fwd_avx2(out, inp, b, e);
#endif
    gelu_fwd_scalar(out, inp, b, e);
  });
}

void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n, bool accumulate) {
  const bool vec = MEDGYM_X86 && simd_level() >= SimdLevel::Avx2Fma;
  parallel_aligned(n, [&](int64_t b, int64_t e) {
#if MEDGYM_X86
    if (vec) return gelu_bwd_avx2(dinp, inp, dout, b, e, accumulate);
#endif
    gelu_bwd_scalar(dinp, inp, dout, b, e, accumulate);
  });
}

void gelu_forward_ref(float* out, const float* inp, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    double x = inp[i];
    out[i] = static_cast<float>(0.5 * x * (1.0 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))));
  }
}

void gelu_backward_ref(float* dinp, const float* inp, const float* dout, int64_t n, bool accumulate) {
  for (int64_t i = 0; i < n; ++i) {
    double x = inp[i];
    double t = std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x));
    double g = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * 0.7978845608028654 * (1 + 3 * 0.044715 * x * x);
    dinp[i] = static_cast<float>((accumulate ? dinp[i] : 0.0) + g * dout[i]);
  }
}

}  // namespace medgym
