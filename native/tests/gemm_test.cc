// Native test of sgemm's strided interface (lda/ldb/ldc larger than the dims, which the JS binding
// never passes) against sgemm_ref, on every SIMD level and thread count, and called from inside a
// parallel region. Build: cmake -DMEDGYM_NATIVE_TESTS=ON ... && ./gemm_test (exit code 0 = pass).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "cpu/cpu_features.h"
#include "cpu/gemm.h"
#include "cpu/threadpool.h"

using namespace medgym;

static int check(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, float beta, int pad) {
  std::mt19937 rng(static_cast<unsigned>(M * 131 + N * 17 + K + pad));
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
  std::vector<float> A((ta ? K : M) * lda), B((tb ? N : K) * ldb), C(M * ldc);
  for (auto& x : A) x = u(rng);
  for (auto& x : B) x = u(rng);
  for (auto& x : C) x = u(rng);
  std::vector<float> R = C, D = C;
  sgemm_ref(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, R.data(), ldc);
  sgemm(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
  // The same call made per row block from inside a parallel region (runs serially there).
  parallel_for(M, [&](int64_t i0, int64_t i1) {
    const float* a = ta ? A.data() + i0 : A.data() + i0 * lda;
    sgemm(ta, tb, i1 - i0, N, K, alpha, a, lda, B.data(), ldb, beta, D.data() + i0 * ldc, ldc);
  }, 8);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < ldc; ++j) {
      const float c = C[i * ldc + j], d = D[i * ldc + j], r = R[i * ldc + j];
      // Padding columns must stay untouched; the rest within a K-scaled bound.
      const bool pad_col = j >= N;
      const double tol = pad_col ? 0.0 : 2e-7 * (K + 4) * (std::fabs(alpha) * K + std::fabs(beta)) + 1e-30;
      if (!(std::fabs(c - r) <= tol) || !(std::fabs(d - r) <= tol)) {
        std::printf("FAIL %s ta=%d tb=%d M=%lld N=%lld K=%lld pad=%d at (%lld,%lld): %g %g vs %g\n",
                    simd_level_name(simd_level()), ta, tb, (long long)M, (long long)N, (long long)K, pad,
                    (long long)i, (long long)j, c, d, r);
        return 1;
      }
    }
  return 0;
}

int main() {
  const int64_t shapes[][3] = {{1, 1, 1}, {5, 7, 3}, {13, 33, 17}, {64, 70, 40}, {100, 45, 300}, {37, 530, 20},
                               {130, 129, 65}};
  int fails = 0;
  for (SimdLevel level : {SimdLevel::Portable, SimdLevel::Avx2Fma, SimdLevel::Avx512}) {
    set_simd_level(level);
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      for (auto& s : shapes)
        for (int t = 0; t < 4; ++t)
          for (int pad : {0, 3}) fails += check(t & 1, t & 2, s[0], s[1], s[2], t == 3 ? -0.5f : 1.0f, pad ? 0.5f : 0.0f, pad);
    }
  }
  std::printf("%s\n", fails ? "gemm_test: FAILED" : "gemm_test: all passed");
  return fails ? 1 : 0;
}
