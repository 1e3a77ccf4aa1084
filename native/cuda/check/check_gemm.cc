// GEMM: cuda::sgemm / gemm_bf16 / gemm_bf16_out against the CPU sgemm, all four transposes, padded
// strides (which also switch the bf16 path between 16-byte and element loads), alpha/beta variants.
// bf16 inputs are rounded first and the CPU multiplies the rounded values, so the fp32-output bf16
// GEMM differs from the CPU only by summation order (bf16 products are exact in fp32).
#include "cpu/gemm.h"
#include "cuda/check/check.h"

namespace medgym::check {

void check_gemm(Checker& c) {
  const int64_t shapes[][3] = {{1, 1, 1},      {5, 7, 3},      {13, 33, 17},   {64, 70, 40},  {130, 129, 65},
                               {128, 128, 128}, {257, 300, 515}, {37, 530, 20}, {300, 64, 1024}};
  for (const auto& s : shapes)
    for (int t = 0; t < 4; ++t)
      for (int pad : {0, 3, 8}) {
        const bool ta = t & 1, tb = t & 2;
        const int64_t M = s[0], N = s[1], K = s[2];
        const float alpha = t == 3 ? -0.5f : 1.0f, beta = pad ? 0.5f : 0.0f;
        const int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
        Rng rng(static_cast<uint64_t>(M * 131 + N * 17 + K * 7 + t * 3 + pad));
        std::vector<float> A = rng.uniform((ta ? K : M) * lda, -1, 1), B = rng.uniform((tb ? N : K) * ldb, -1, 1),
                           C0 = rng.uniform(M * ldc, -1, 1);
        const std::string shape = fmt("%lldx%lldx%lld %c%c pad%d", (long long)M, (long long)N, (long long)K,
                                      ta ? 'T' : 'N', tb ? 'T' : 'N', pad);
        {  // fp32
          std::vector<float> want = C0;
          sgemm(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, want.data(), ldc);
          auto dA = upload(A), dB = upload(B), dC = upload(C0);
          cuda::sgemm(ta, tb, M, N, K, alpha, dA.get(), lda, dB.get(), ldb, beta, dC.get(), ldc, nullptr);
          c.expect("sgemm", shape, "C", compare(download(dC), want), 1e-5);
        }
        {  // bf16 in, fp32 out / bf16 out
          const std::vector<float> Ar = round_bf16(A), Br = round_bf16(B), Cr = round_bf16(C0);
          auto dA = upload(to_bf16(A)), dB = upload(to_bf16(B));
          std::vector<float> want = C0;
          sgemm(ta, tb, M, N, K, alpha, Ar.data(), lda, Br.data(), ldb, beta, want.data(), ldc);
          auto dC = upload(C0);
          cuda::gemm_bf16(ta, tb, M, N, K, alpha, dA.get(), lda, dB.get(), ldb, beta, dC.get(), ldc, nullptr);
          c.expect("gemm_bf16", shape, "C", compare(download(dC), want), 1e-5);
          std::vector<float> want_b = Cr;
          sgemm(ta, tb, M, N, K, alpha, Ar.data(), lda, Br.data(), ldb, beta, want_b.data(), ldc);
          auto dCb = upload(to_bf16(C0));
          cuda::gemm_bf16_out(ta, tb, M, N, K, alpha, dA.get(), lda, dB.get(), ldb, beta, dCb.get(), ldc, nullptr);
          // Padding columns are never written, so they must still hold the (rounded) C0.
          std::vector<float> got = from_bf16(download(dCb));
          c.expect("gemm_bf16_out", shape, "C", compare(got, round_bf16(want_b)), 8e-3);
        }
      }
  // alpha == 0 and K == 0: C = beta C without reading A / B (null pointers would fault).
  for (float beta : {0.0f, 0.5f}) {
    Rng rng(7);
    std::vector<float> C0 = rng.uniform(6 * 9, -1, 1), want = C0;
    for (auto& v : want) v = beta == 0.0f ? 0.0f : beta * v;
    auto dC = upload(C0);
    cuda::sgemm(false, false, 6, 9, 0, 1.0f, nullptr, 1, nullptr, 9, beta, dC.get(), 9, nullptr);
    c.expect("sgemm", fmt("K=0 beta=%g", beta), "C", compare(download(dC), want), 0.0);
    dC = upload(C0);
    cuda::gemm_bf16(false, false, 6, 9, 5, 0.0f, nullptr, 5, nullptr, 9, beta, dC.get(), 9, nullptr);
    c.expect("gemm_bf16", fmt("alpha=0 beta=%g", beta), "C", compare(download(dC), want), 0.0);
  }
}

}  // namespace medgym::check
