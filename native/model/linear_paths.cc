#include "model/linear_paths.h"

#include <algorithm>

#include "cpu/cpu_features.h"
#include "cpu/gemm_bf16.h"
#include "cpu/gemm_internal.h"
#include "cpu/threadpool.h"

namespace medgym::model {

namespace {

// Dot-path GEMMs with more rows than this go over W in blocks of kDotColumns columns.
constexpr int64_t kDotDirectRows = 4;
constexpr int64_t kDotColumns = 64;
// Less GEMM work than this per thread is not worth waking one (as in gemm.cc).
constexpr double kFlopsPerThread = 1 << 19;

const gemm_detail::GemmImpl& gemm_impl() {
  switch (simd_level()) {
    case SimdLevel::Avx512: return gemm_detail::impl_avx512();
    case SimdLevel::Avx2Fma: return gemm_detail::impl_avx2();
    default: return gemm_detail::impl_portable();
  }
}

}  // namespace

// With many rows the dot path goes over W in column blocks (kDotColumns of W's rows stay in L1/L2
// while every row of X passes) instead of streaming all of W once per 4 rows of X; outside a
// parallel region the blocks are split over the threads (one region per call). Same dot products,
// so the same bits.
void linear(bool packed, int64_t M, int64_t N, int64_t K, const float* X, const float* W, float beta, float* Y) {
  if (M <= 0) return;
  const gemm_detail::GemmImpl& im = gemm_impl();
  if (packed) return gemm_detail::sgemm_packed(im, false, true, M, N, K, 1.0f, X, K, W, K, beta, Y, N);
  if (M <= kDotDirectRows) return gemm_detail::sgemm_dot(im, M, N, K, 1.0f, X, K, W, K, beta, Y, N);
  const int64_t blocks = (N + kDotColumns - 1) / kDotColumns;
  const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  parallel_run([&](int tid, int nthreads) {
    int64_t b0, b1;
    static_chunk(blocks, tid, nthreads, &b0, &b1);
    for (int64_t j = b0 * kDotColumns; j < std::min(N, b1 * kDotColumns); j += kDotColumns)
      gemm_detail::sgemm_dot(im, M, std::min(kDotColumns, N - j), K, 1.0f, X, K, W + j * K, K, beta, Y + j, N);
  }, static_cast<int>(std::min<double>(static_cast<double>(blocks), std::max(1.0, flops / kFlopsPerThread))));
}

void linear_bf16(bool packed, int64_t M, int64_t N, int64_t K, const float* X, const uint16_t* W, const float* bias,
                 float* Y, Bf16Mode dot_mode) {
  if (M <= 0) return;
  if (!packed) return gemm_bf16(dot_mode, M, N, K, X, K, W, K, bias, 0.0f, Y, N);
  sgemm_bf16w(M, N, K, 1.0f, X, K, W, K, 0.0f, Y, N);
  if (!bias) return;
  parallel_for(M, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t j = 0; j < N; ++j) Y[r * N + j] += bias[j];
  }, 64);
}

}  // namespace medgym::model
