#include "cpu/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/cpu_features.h"
#include "cpu/simd.h"
#include "cpu/threadpool.h"

namespace medgym {

namespace {

inline int64_t row_grain(int64_t C) { return std::max<int64_t>(1, 8192 / std::max<int64_t>(C, 1)); }
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

void sm_fwd_scalar(float* out, const float* inp, int64_t r0, int64_t r1, int64_t C, float scale) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* x = inp + r * C;
    float* o = out + r * C;
    float mx = kNegInf;
    for (int64_t i = 0; i < C; ++i) mx = std::max(mx, scale * x[i]);
    if (mx == kNegInf) {
      std::fill(o, o + C, 0.0f);
      continue;
    }
    float s = 0.0f;
    for (int64_t i = 0; i < C; ++i) s += (o[i] = std::exp(scale * x[i] - mx));
    const float inv = 1.0f / s;
    for (int64_t i = 0; i < C; ++i) o[i] *= inv;
  }
}

void sm_bwd_scalar(float* dinp, const float* out, const float* dout, int64_t r0, int64_t r1, int64_t C,
                   float scale, bool acc) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* p = out + r * C;
    const float* dy = dout + r * C;
    float* dx = dinp + r * C;
    float s = 0.0f;
    for (int64_t i = 0; i < C; ++i) s += dy[i] * p[i];
    for (int64_t i = 0; i < C; ++i) {
      float d = scale * p[i] * (dy[i] - s);
      dx[i] = acc ? dx[i] + d : d;
    }
  }
}

#if MEDGYM_X86
MEDGYM_AVX2 void sm_fwd_avx2(float* out, const float* inp, int64_t r0, int64_t r1, int64_t C, float scale) {
  const int64_t C8 = C & ~int64_t(7);
  const __m256 vs = _mm256_set1_ps(scale);
  for (int64_t r = r0; r < r1; ++r) {
    const float* x = inp + r * C;
    float* o = out + r * C;
    __m256 vmx = _mm256_set1_ps(kNegInf);
    for (int64_t i = 0; i < C8; i += 8) vmx = _mm256_max_ps(vmx, _mm256_mul_ps(vs, _mm256_loadu_ps(x + i)));
    float mx = simd::hmax256(vmx);
    for (int64_t i = C8; i < C; ++i) mx = std::max(mx, scale * x[i]);
    if (mx == kNegInf) {
      std::fill(o, o + C, 0.0f);
      continue;
    }
    const __m256 vm = _mm256_set1_ps(mx);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < C8; i += 8) {
      __m256 e = simd::exp256(_mm256_fmsub_ps(vs, _mm256_loadu_ps(x + i), vm));
      _mm256_storeu_ps(o + i, e);
      acc = _mm256_add_ps(acc, e);
    }
    float s = simd::hsum256(acc);
    for (int64_t i = C8; i < C; ++i) s += (o[i] = std::exp(scale * x[i] - mx));
    const float inv = 1.0f / s;
    const __m256 vi = _mm256_set1_ps(inv);
    for (int64_t i = 0; i < C8; i += 8) _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_loadu_ps(o + i), vi));
    for (int64_t i = C8; i < C; ++i) o[i] *= inv;
  }
}

MEDGYM_AVX2 void sm_bwd_avx2(float* dinp, const float* out, const float* dout, int64_t r0, int64_t r1, int64_t C,
                             float scale, bool acc) {
  const int64_t C8 = C & ~int64_t(7);
  const __m256 vsc = _mm256_set1_ps(scale);
  for (int64_t r = r0; r < r1; ++r) {
    const float* p = out + r * C;
    const float* dy = dout + r * C;
    float* dx = dinp + r * C;
    __m256 a = _mm256_setzero_ps();
    for (int64_t i = 0; i < C8; i += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(dy + i), _mm256_loadu_ps(p + i), a);
    float s = simd::hsum256(a);
    for (int64_t i = C8; i < C; ++i) s += dy[i] * p[i];
    const __m256 vsum = _mm256_set1_ps(s);
    for (int64_t i = 0; i < C8; i += 8) {
      __m256 d = _mm256_mul_ps(_mm256_mul_ps(vsc, _mm256_loadu_ps(p + i)),
                               _mm256_sub_ps(_mm256_loadu_ps(dy + i), vsum));
      if (acc) d = _mm256_add_ps(d, _mm256_loadu_ps(dx + i));
      _mm256_storeu_ps(dx + i, d);
    }
    for (int64_t i = C8; i < C; ++i) {
      float d = scale * p[i] * (dy[i] - s);
      dx[i] = acc ? dx[i] + d : d;
    }
  }
}
#endif

}  // namespace

void softmax_forward(float* out, const float* inp, int64_t N, int64_t C, float scale) {
  if (N <= 0 || C <= 0) return;
  const bool vec = MEDGYM_X86 && simd_level() >= SimdLevel::Avx2Fma;
  parallel_for(N, [&](int64_t r0, int64_t r1) {
#if MEDGYM_X86
    if (vec) return sm_fwd_avx2(out, inp, r0, r1, C, scale);
#endif
    sm_fwd_scalar(out, inp, r0, r1, C, scale);
  }, row_grain(C));
}

void softmax_backward(float* dinp, const float* out, const float* dout, int64_t N, int64_t C, float scale,
                      bool accumulate) {
  if (N <= 0 || C <= 0) return;
  const bool vec = MEDGYM_X86 && simd_level() >= SimdLevel::Avx2Fma;
  parallel_for(N, [&](int64_t r0, int64_t r1) {
#if MEDGYM_X86
    if (vec) return sm_bwd_avx2(dinp, out, dout, r0, r1, C, scale, accumulate);
#endif
    sm_bwd_scalar(dinp, out, dout, r0, r1, C, scale, accumulate);
  }, row_grain(C));
}

void softmax_forward_ref(float* out, const float* inp, int64_t N, int64_t C, float scale) {
  for (int64_t r = 0; r < N; ++r) {
    const float* x = inp + r * C;
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t i = 0; i < C; ++i) mx = std::max(mx, double(scale) * x[i]);
    if (std::isinf(mx) && mx < 0) {
      std::fill(out + r * C, out + (r + 1) * C, 0.0f);
      continue;
    }
    double s = 0;
    for (int64_t i = 0; i < C; ++i) s += std::exp(double(scale) * x[i] - mx);
    for (int64_t i = 0; i < C; ++i) out[r * C + i] = static_cast<float>(std::exp(double(scale) * x[i] - mx) / s);
  }
}

void softmax_backward_ref(float* dinp, const float* out, const float* dout, int64_t N, int64_t C, float scale,
                          bool accumulate) {
  for (int64_t r = 0; r < N; ++r) {
    const float* p = out + r * C;
    const float* dy = dout + r * C;
    double s = 0;
    for (int64_t i = 0; i < C; ++i) s += double(dy[i]) * p[i];
    for (int64_t i = 0; i < C; ++i) {
      double d = double(scale) * p[i] * (dy[i] - s);
      dinp[r * C + i] = static_cast<float>(accumulate ? dinp[r * C + i] + d : d);
    }
  }
}

}  // namespace medgym
