// Portable GEMM kernels (plain C++ the compiler vectorizes for the baseline ISA, e.g. SSE2): a 6 x 8
// micro-kernel for the packed path and 8-lane dot products for the small-M path.
#include "cpu/gemm_internal.h"
#include "cpu/gemm_pack.h"

#include <cstring>

namespace medgym::gemm_detail {

namespace {

constexpr int kMR = 6, kNR = 8;

#if defined(__GNUC__) || defined(__clang__)
// GCC/Clang vector extensions: 4-float vectors that compile to SSE / NEON / scalar code as the
// target allows; 12 accumulators + 2 B vectors + 1 broadcast fit 16 registers.
typedef float v4f __attribute__((vector_size(16)));

inline v4f load4(const float* p) {
  v4f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store4(float* p, v4f v) { std::memcpy(p, &v, sizeof v); }

void micro_kernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta) {
  v4f acc[kMR][2] = {};
  for (int64_t k = 0; k < kc; ++k) {
    const v4f b0 = load4(b), b1 = load4(b + 4);
    for (int r = 0; r < kMR; ++r) {
      const v4f ar = {a[r], a[r], a[r], a[r]};
      acc[r][0] += ar * b0;
      acc[r][1] += ar * b1;
    }
    a += kMR;
    b += kNR;
  }
  for (int r = 0; r < kMR; ++r) {
    float* cr = c + r * ldc;
    for (int v = 0; v < 2; ++v) {
      v4f t = alpha * acc[r][v];
      if (beta != 0.0f) t += beta * load4(cr + 4 * v);
      store4(cr + 4 * v, t);
    }
  }
}
#else
void micro_kernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta) {
  float acc[kMR][kNR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    for (int r = 0; r < kMR; ++r)
      for (int v = 0; v < kNR; ++v) acc[r][v] += a[r] * b[v];
    a += kMR;
    b += kNR;
  }
  for (int r = 0; r < kMR; ++r) {
    float* cr = c + r * ldc;
    for (int v = 0; v < kNR; ++v) {
      float t = alpha * acc[r][v];
      cr[v] = beta == 0.0f ? t : t + beta * cr[v];
    }
  }
}
#endif

constexpr int kLanes = 8;

inline float dot(const float* x, const float* y, int64_t K) {
  float acc[kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= K; k += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += x[k + l] * y[k + l];
  for (int l = 0; k + l < K; ++l) acc[l] += x[k + l] * y[k + l];
  float s = 0.0f;
  for (int l = 0; l < kLanes; ++l) s += acc[l];
  return s;
}

void dot_rows(int64_t M, int64_t n0, int64_t n1, int64_t K, float alpha, const float* A, int64_t lda,
              const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = n0; j < n1; ++j) {
      float* c = C + i * ldc + j;
      float v = alpha * dot(A + i * lda, B + j * ldb, K);
      *c = beta == 0.0f ? v : v + beta * *c;
    }
}

// W columns of row i from j0 (W a compile-time width, or the run-time tail width w <= kW).
template <int64_t W>
void axpy_cols(int64_t i, int64_t j0, int64_t w, int64_t K, float alpha, bool trans_a, const float* A,
               int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const int64_t n = W > 0 ? W : w;
  float acc[W > 0 ? W : 32] = {};
  for (int64_t k = 0; k < K; ++k) {
    const float a = trans_a ? A[k * lda + i] : A[i * lda + k];
    const float* b = B + k * ldb + j0;
    for (int64_t q = 0; q < n; ++q) acc[q] += a * b[q];
  }
  float* c = C + i * ldc + j0;
  for (int64_t q = 0; q < n; ++q) {
    float v = alpha * acc[q];
    c[q] = beta == 0.0f ? v : v + beta * c[q];
  }
}

void axpy_rows(int64_t M, int64_t n0, int64_t n1, int64_t K, float alpha, bool trans_a, const float* A,
               int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  constexpr int64_t kW = 32;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j0 = n0; j0 < n1; j0 += kW) {
      if (j0 + kW <= n1) axpy_cols<kW>(i, j0, kW, K, alpha, trans_a, A, lda, B, ldb, beta, C, ldc);
      else axpy_cols<0>(i, j0, n1 - j0, K, alpha, trans_a, A, lda, B, ldb, beta, C, ldc);
    }
}

}  // namespace

const GemmImpl& impl_portable() {
  static const GemmImpl impl{"portable", kMR, kNR, 120, 256, 512, micro_kernel, pack_a<kMR, false>, pack_b<kNR, false>,
                             dot_rows, axpy_rows, 2, 1};
  return impl;
}

}  // namespace medgym::gemm_detail
