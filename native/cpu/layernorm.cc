#include "cpu/layernorm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/cpu_features.h"
#include "cpu/simd.h"
#include "cpu/threadpool.h"

namespace medgym {

namespace {

// Rows per thread below which threading costs more than it saves (scaled by C).
inline int64_t row_grain(int64_t C) { return std::max<int64_t>(1, 8192 / std::max<int64_t>(C, 1)); }

// ---- portable row kernels (float accumulation; the optimized path's fallback) ----
void ln_fwd_rows_scalar(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b,
                        int64_t r0, int64_t r1, int64_t C, float eps) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* x = inp + r * C;
    float* o = out + r * C;
    float s = 0.0f;
    for (int64_t i = 0; i < C; ++i) s += x[i];
    float m = s / static_cast<float>(C);
    float v = 0.0f;
    for (int64_t i = 0; i < C; ++i) v += (x[i] - m) * (x[i] - m);
    float rs = 1.0f / std::sqrt(v / static_cast<float>(C) + eps);
    for (int64_t i = 0; i < C; ++i) o[i] = (x[i] - m) * rs * w[i] + b[i];
    mean[r] = m;
    rstd[r] = rs;
  }
}

void ln_bwd_rows_scalar(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                        const float* mean, const float* rstd, int64_t r0, int64_t r1, int64_t C, bool acc) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* x = inp + r * C;
    const float* dy = dout + r * C;
    float* dx = dinp + r * C;
    const float m = mean[r], rs = rstd[r];
    float sg = 0.0f, sgx = 0.0f;
    for (int64_t i = 0; i < C; ++i) {
      float xh = (x[i] - m) * rs, g = dy[i] * w[i];
      sg += g;
      sgx += g * xh;
    }
    sg /= static_cast<float>(C);
    sgx /= static_cast<float>(C);
    for (int64_t i = 0; i < C; ++i) {
      float xh = (x[i] - m) * rs, g = dy[i] * w[i];
      dw[i] += dy[i] * xh;
      db[i] += dy[i];
      float d = rs * (g - sg - xh * sgx);
      dx[i] = acc ? dx[i] + d : d;
    }
  }
}

#if MEDGYM_X86
MEDGYM_AVX2 void ln_fwd_rows_avx2(float* out, float* mean, float* rstd, const float* inp, const float* w,
                                  const float* b, int64_t r0, int64_t r1, int64_t C, float eps) {
  const int64_t C8 = C & ~int64_t(7);
  for (int64_t r = r0; r < r1; ++r) {
    const float* x = inp + r * C;
    float* o = out + r * C;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < C8; i += 8) acc = _mm256_add_ps(acc, _mm256_loadu_ps(x + i));
    float s = simd::hsum256(acc);
    for (int64_t i = C8; i < C; ++i) s += x[i];
    const float m = s / static_cast<float>(C);
    const __m256 vm = _mm256_set1_ps(m);
    acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < C8; i += 8) {
      __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), vm);
      acc = _mm256_fmadd_ps(d, d, acc);
    }
    float v = simd::hsum256(acc);
    for (int64_t i = C8; i < C; ++i) v += (x[i] - m) * (x[i] - m);
    const float rs = 1.0f / std::sqrt(v / static_cast<float>(C) + eps);
    const __m256 vr = _mm256_set1_ps(rs);
    for (int64_t i = 0; i < C8; i += 8) {
      __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), vr);
      _mm256_storeu_ps(o + i, _mm256_fmadd_ps(xh, _mm256_loadu_ps(w + i), _mm256_loadu_ps(b + i)));
    }
    for (int64_t i = C8; i < C; ++i) o[i] = (x[i] - m) * rs * w[i] + b[i];
    mean[r] = m;
    rstd[r] = rs;
  }
}

MEDGYM_AVX2 void ln_bwd_rows_avx2(float* dinp, float* dw, float* db, const float* dout, const float* inp,
                                  const float* w, const float* mean, const float* rstd, int64_t r0, int64_t r1,
                                  int64_t C, bool acc) {
  const int64_t C8 = C & ~int64_t(7);
  for (int64_t r = r0; r < r1; ++r) {
    const float* x = inp + r * C;
    const float* dy = dout + r * C;
    float* dx = dinp + r * C;
    const float m = mean[r], rs = rstd[r];
    const __m256 vm = _mm256_set1_ps(m), vr = _mm256_set1_ps(rs);
    __m256 a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps();
    for (int64_t i = 0; i < C8; i += 8) {
      __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), vr);
      __m256 g = _mm256_mul_ps(_mm256_loadu_ps(dy + i), _mm256_loadu_ps(w + i));
      a1 = _mm256_add_ps(a1, g);
      a2 = _mm256_fmadd_ps(g, xh, a2);
    }
    float sg = simd::hsum256(a1), sgx = simd::hsum256(a2);
    for (int64_t i = C8; i < C; ++i) {
      float xh = (x[i] - m) * rs, g = dy[i] * w[i];
      sg += g;
      sgx += g * xh;
    }
    sg /= static_cast<float>(C);
    sgx /= static_cast<float>(C);
    const __m256 vsg = _mm256_set1_ps(sg), vsgx = _mm256_set1_ps(sgx);
    for (int64_t i = 0; i < C8; i += 8) {
      __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), vr);
      __m256 d = _mm256_loadu_ps(dy + i);
      __m256 g = _mm256_mul_ps(d, _mm256_loadu_ps(w + i));
      _mm256_storeu_ps(dw + i, _mm256_fmadd_ps(d, xh, _mm256_loadu_ps(dw + i)));
      _mm256_storeu_ps(db + i, _mm256_add_ps(d, _mm256_loadu_ps(db + i)));
      __m256 t = _mm256_mul_ps(vr, _mm256_sub_ps(_mm256_sub_ps(g, vsg), _mm256_mul_ps(xh, vsgx)));
      if (acc) t = _mm256_add_ps(t, _mm256_loadu_ps(dx + i));
      _mm256_storeu_ps(dx + i, t);
    }
    for (int64_t i = C8; i < C; ++i) {
      float xh = (x[i] - m) * rs, g = dy[i] * w[i];
      dw[i] += dy[i] * xh;
      db[i] += dy[i];
      float d = rs * (g - sg - xh * sgx);
      dx[i] = acc ? dx[i] + d : d;
    }
  }
}
#endif

}  // namespace

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int64_t N, int64_t C, float eps) {
  if (N <= 0 || C <= 0) return;
  const bool vec = MEDGYM_X86 && simd_level() >= SimdLevel::Avx2Fma;
  parallel_for(N, [&](int64_t r0, int64_t r1) {
#if MEDGYM_X86
    if (vec) return ln_fwd_rows_avx2(out, mean, rstd, inp, weight, bias, r0, r1, C, eps);
#endif
    ln_fwd_rows_scalar(out, mean, rstd, inp, weight, bias, r0, r1, C, eps);
  }, row_grain(C));
}

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C,
                        bool accumulate_dinp) {
  if (N <= 0 || C <= 0) return;
  const bool vec = MEDGYM_X86 && simd_level() >= SimdLevel::Avx2Fma;
  const int64_t grain = row_grain(C);
  const int max_threads = static_cast<int>(std::min<int64_t>(std::max<int64_t>(1, N / grain), 1 << 20));
  // Per-thread partials [nthreads][2][C]; sized for the pool, the region may use fewer threads.
  const int cap = std::min(num_threads(), max_threads);
  std::vector<float> part(static_cast<size_t>(cap) * 2 * C, 0.0f);
  int used = 1;
  parallel_run([&](int tid, int nthreads) {
    if (tid == 0) used = nthreads;
    int64_t r0, r1;
    static_chunk(N, tid, nthreads, &r0, &r1);
    float* dw = part.data() + static_cast<size_t>(tid) * 2 * C;
    float* db = dw + C;
#if MEDGYM_X86
    if (vec) return ln_bwd_rows_avx2(dinp, dw, db, dout, inp, weight, mean, rstd, r0, r1, C, accumulate_dinp);
#endif
    ln_bwd_rows_scalar(dinp, dw, db, dout, inp, weight, mean, rstd, r0, r1, C, accumulate_dinp);
  }, cap);
  // Combine the partials in thread order, column by column.
  for (int t = 0; t < used; ++t) {
    const float* dw = part.data() + static_cast<size_t>(t) * 2 * C;
    const float* db = dw + C;
    for (int64_t i = 0; i < C; ++i) {
      dweight[i] += dw[i];
      dbias[i] += db[i];
    }
  }
}

void layernorm_forward_ref(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                           const float* bias, int64_t N, int64_t C, float eps) {
  for (int64_t r = 0; r < N; ++r) {
    const float* x = inp + r * C;
    double s = 0;
    for (int64_t i = 0; i < C; ++i) s += x[i];
    double m = s / C, v = 0;
    for (int64_t i = 0; i < C; ++i) v += (x[i] - m) * (x[i] - m);
    double rs = 1.0 / std::sqrt(v / C + eps);
    for (int64_t i = 0; i < C; ++i) out[r * C + i] = static_cast<float>((x[i] - m) * rs * weight[i] + bias[i]);
    mean[r] = static_cast<float>(m);
    rstd[r] = static_cast<float>(rs);
  }
}

void layernorm_backward_ref(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                            const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C,
                            bool accumulate_dinp) {
  std::vector<double> dw(C, 0.0), db(C, 0.0);
  for (int64_t r = 0; r < N; ++r) {
    const float* x = inp + r * C;
    const float* dy = dout + r * C;
    double m = mean[r], rs = rstd[r], sg = 0, sgx = 0;
    for (int64_t i = 0; i < C; ++i) {
      double xh = (x[i] - m) * rs, g = double(dy[i]) * weight[i];
      sg += g;
      sgx += g * xh;
      dw[i] += dy[i] * xh;
      db[i] += dy[i];
    }
    sg /= C;
    sgx /= C;
    for (int64_t i = 0; i < C; ++i) {
      double xh = (x[i] - m) * rs, g = double(dy[i]) * weight[i];
      double d = rs * (g - sg - xh * sgx);
      dinp[r * C + i] = static_cast<float>(accumulate_dinp ? dinp[r * C + i] + d : d);
    }
  }
  for (int64_t i = 0; i < C; ++i) {
    dweight[i] = static_cast<float>(dweight[i] + dw[i]);
    dbias[i] = static_cast<float>(dbias[i] + db[i]);
  }
}

}  // namespace medgym
