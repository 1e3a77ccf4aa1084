// GEMM twins of cpu/gemm.h: sgemm (fp32, SIMT) and gemm_bf16 / gemm_bf16_out (bf16 tensor cores,
// fp32 accumulation). Where the build has cuBLAS, it runs them instead (gemm_cublas.h). The block computes its tile with an engine of gemm_tile.cuh, then the epilogue
// writes alpha * T + beta * C row by row (coalesced).
#include "cuda/gemm_cublas.h"
#include "cuda/gemm_tile.cuh"

namespace medgym::cuda {

namespace {

template <class Eng, bool TA, bool TB, typename TC>
__global__ void __launch_bounds__(Eng::THREADS, Eng::MIN_BLOCKS) gemm_kernel(int64_t M, int64_t N, int64_t K, float alpha,
                                                            const typename Eng::In* A, int64_t lda, bool vec_a,
                                                            const typename Eng::In* B, int64_t ldb, bool vec_b,
                                                            float beta, TC* C, int64_t ldc) {
  extern __shared__ __align__(128) unsigned char smem[];
  const int64_t m0 = int64_t(blockIdx.y) * Eng::BM, n0 = int64_t(blockIdx.x) * Eng::BN;
  Eng::template compute<TA, TB>(A, lda, vec_a, B, ldb, vec_b, M, N, K, m0, n0, smem);
  const float* tile = reinterpret_cast<const float*>(smem);
  for (int i = threadIdx.x; i < Eng::BM * Eng::BN; i += Eng::THREADS) {
    const int r = i / Eng::BN, c = i % Eng::BN;
    const int64_t gm = m0 + r, gn = n0 + c;
    if (gm >= M || gn >= N) continue;
    TC* p = C + gm * ldc + gn;
    float v = alpha * tile[r * Eng::TLD + c];
    if (beta != 0.0f) v += beta * load_f(p);  // beta == 0 ignores NaN/Inf in C, as BLAS
    store_f(p, v);
  }
}

// C = beta * C over an M x N view (alpha == 0 or K == 0: A and B are not read).
template <typename TC>
__global__ void scale_kernel(int64_t M, int64_t N, float beta, TC* C, int64_t ldc) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < M * N; i += int64_t(gridDim.x) * blockDim.x) {
    TC* p = C + (i / N) * ldc + i % N;
    store_f(p, beta == 0.0f ? 0.0f : beta * load_f(p));
  }
}

template <class Eng, bool TA, bool TB, typename TC>
void launch(int64_t M, int64_t N, int64_t K, float alpha, const typename Eng::In* A, int64_t lda, bool vec_a,
            const typename Eng::In* B, int64_t ldb, bool vec_b, float beta, TC* C, int64_t ldc, cudaStream_t s,
            const char* name) {
  auto kernel = gemm_kernel<Eng, TA, TB, TC>;
  allow_smem(kernel, Eng::kSmem, name);
  const dim3 grid(static_cast<unsigned>(ceil_div(N, Eng::BN)), static_cast<unsigned>(ceil_div(M, Eng::BM)));
  kernel<<<grid, Eng::THREADS, Eng::kSmem, s>>>(M, N, K, alpha, A, lda, vec_a, B, ldb, vec_b, beta, C, ldc);
  check_launch(name);
}

template <class Eng, typename TC>
void gemm_any(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const typename Eng::In* A, int64_t lda,
              const typename Eng::In* B, int64_t ldb, float beta, TC* C, int64_t ldc, cudaStream_t s,
              const char* name) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    if (beta == 1.0f) return;
    scale_kernel<<<grid_for(M * N, 256, 4096), 256, 0, s>>>(M, N, beta, C, ldc);
    check_launch(name);
    return;
  }
  if (cublas_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, s)) return;
  if (ceil_div(M, Eng::BM) > 65535) throw std::invalid_argument(std::string(name) + ": M too large for the grid");
  const bool va = bf16_rows_vectorizable(A, lda), vb = bf16_rows_vectorizable(B, ldb);
  if (!ta && !tb) launch<Eng, false, false>(M, N, K, alpha, A, lda, va, B, ldb, vb, beta, C, ldc, s, name);
  if (!ta && tb) launch<Eng, false, true>(M, N, K, alpha, A, lda, va, B, ldb, vb, beta, C, ldc, s, name);
  if (ta && !tb) launch<Eng, true, false>(M, N, K, alpha, A, lda, va, B, ldb, vb, beta, C, ldc, s, name);
  if (ta && tb) launch<Eng, true, true>(M, N, K, alpha, A, lda, va, B, ldb, vb, beta, C, ldc, s, name);
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc, Stream s) {
  gemm_any<SimtTile>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, to_stream(s), "sgemm kernel");
}

void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const Bf16* A, int64_t lda,
               const Bf16* B, int64_t ldb, float beta, float* C, int64_t ldc, Stream s) {
  gemm_any<TcTile>(trans_a, trans_b, M, N, K, alpha, to_bf(A), lda, to_bf(B), ldb, beta, C, ldc, to_stream(s),
                   "gemm_bf16 kernel");
}

void gemm_bf16_out(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const Bf16* A,
                   int64_t lda, const Bf16* B, int64_t ldb, float beta, Bf16* C, int64_t ldc, Stream s) {
  gemm_any<TcTile>(trans_a, trans_b, M, N, K, alpha, to_bf(A), lda, to_bf(B), ldb, beta, to_bf(C), ldc,
                   to_stream(s), "gemm_bf16_out kernel");
}

}  // namespace medgym::cuda
