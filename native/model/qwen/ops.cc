#include "model/qwen/ops.h"

#include <cmath>
#include <vector>

#include "cpu/gemm_bf16.h"
#include "model/linear_paths.h"
#include "cpu/threadpool.h"

namespace medgym::qwen {

namespace {
constexpr int64_t kRowChunk = 64;
}

void linear(int64_t M, const Lin& l, const float* X, float* Y, bool packed) {
  if (M <= 0) return;
  if (l.w16) return model::linear_bf16(packed, M, l.out, l.in, X, l.w16, l.b, Y, l.dot_bf16 ? Bf16Mode::Bf16Dot : Bf16Mode::Exact);
  model::linear(packed, M, l.out, l.in, X, l.w, 0.0f, Y);
  if (!l.b) return;
  parallel_for(M, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* y = Y + r * l.out;
      for (int64_t j = 0; j < l.out; ++j) y[j] += l.b[j];
    }
  }, kRowChunk);
}

void rmsnorm(int64_t N, int64_t D, const float* x, const float* w, float eps, float* out) {
  parallel_for(N, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * D;
      float* o = out + r * D;
      double ss = 0;
      for (int64_t j = 0; j < D; ++j) ss += double(xr[j]) * double(xr[j]);
      const float s = static_cast<float>(1.0 / std::sqrt(ss / double(D) + double(eps)));
      for (int64_t j = 0; j < D; ++j) o[j] = w[j] * (xr[j] * s);
    }
  }, kRowChunk);
}

void layernorm(int64_t N, int64_t D, const float* x, const float* w, const float* b, float eps, float* out) {
  parallel_for(N, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * D;
      float* o = out + r * D;
      double mean = 0;
      for (int64_t j = 0; j < D; ++j) mean += xr[j];
      mean /= double(D);
      double var = 0;
      for (int64_t j = 0; j < D; ++j) var += (xr[j] - mean) * (xr[j] - mean);
      const double rstd = 1.0 / std::sqrt(var / double(D) + double(eps));
      for (int64_t j = 0; j < D; ++j) o[j] = static_cast<float>((xr[j] - mean) * rstd) * w[j] + b[j];
    }
  }, kRowChunk);
}

void quick_gelu(int64_t n, float* x) {
  parallel_for(n, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) x[i] = x[i] / (1.0f + std::exp(-1.702f * x[i]));
  }, 4096);
}

void gelu_erf(int64_t n, float* x) {
  parallel_for(n, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752f));
  }, 4096);
}

void silu_mul(int64_t rows, int64_t n, float* g, int64_t g_stride, const float* u, int64_t u_stride) {
  parallel_for(rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* gr = g + r * g_stride;
      const float* ur = u + r * u_stride;
      for (int64_t j = 0; j < n; ++j) gr[j] = gr[j] / (1.0f + std::exp(-gr[j])) * ur[j];
    }
  }, 16);
}

void add_inplace(int64_t n, float* y, const float* x) {
  parallel_for(n, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) y[i] += x[i];
  }, 4096);
}

void rotate(int64_t rows, int64_t H, int64_t hd, float* x, int64_t stride, const float* cos, const float* sin) {
  const int64_t half = hd / 2;
  parallel_for(rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* c = cos + r * half;
      const float* s = sin + r * half;
      for (int64_t h = 0; h < H; ++h) {
        float* v = x + r * stride + h * hd;
        for (int64_t i = 0; i < half; ++i) {
          const float a = v[i], b = v[i + half];
          v[i] = a * c[i] - b * s[i];
          v[i + half] = b * c[i] + a * s[i];
        }
      }
    }
  }, 16);
}

}  // namespace medgym::qwen
