// PLACEHOLDER implementation (to be replaced by the blocked, packed, SIMD-dispatched GEMM):
// a correct row-parallel loop so that other kernels can be written against the interface.
#include "cpu/gemm.h"

#include <vector>

#include "cpu/threadpool.h"

namespace medgym {

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  parallel_for(M, [&](int64_t i0, int64_t i1) {
    std::vector<float> row(N);
    for (int64_t i = i0; i < i1; ++i) {
      for (int64_t j = 0; j < N; ++j) row[j] = 0.0f;
      for (int64_t k = 0; k < K; ++k) {
        float a = trans_a ? A[k * lda + i] : A[i * lda + k];
        if (trans_b) for (int64_t j = 0; j < N; ++j) row[j] += a * B[j * ldb + k];
        else for (int64_t j = 0; j < N; ++j) row[j] += a * B[k * ldb + j];
      }
      float* c = C + i * ldc;
      for (int64_t j = 0; j < N; ++j) c[j] = alpha * row[j] + (beta == 0.0f ? 0.0f : beta * c[j]);
    }
  }, 4);
}

}  // namespace medgym
