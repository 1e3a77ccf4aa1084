// SFT cross-entropy twins of cpu/cross_entropy.h, on top of the log-prob kernels: the forward sums
// -logp over the kept rows in double (one block: strided per-thread sums in row order, then the
// fixed block tree); the backward turns dloss into the per-row upstream gradient -dloss * w
// (computed in double as on the CPU) and runs the log-prob backward.
#include "cuda/common.cuh"

namespace medgym::cuda {

namespace {

constexpr int kReduceThreads = 1024;

__global__ void __launch_bounds__(kReduceThreads) ce_reduce_kernel(const float* logp, const int32_t* targets, int64_t N,
                                                                   bool mean, CrossEntropyResult* result) {
  __shared__ double shd[32];
  __shared__ long long shc[32];
  double s = 0.0;
  long long c = 0;
  for (int64_t r = threadIdx.x; r < N; r += kReduceThreads)
    if (targets[r] >= 0) s -= logp[r], c += 1;
  s = block_sum(s, shd);
  c = block_sum(c, shc);
  if (threadIdx.x == 0) {
    result->count = c;
    result->loss = mean ? (c > 0 ? s / static_cast<double>(c) : 0.0) : s;
  }
}

// g[r] = -dloss * w, w = 1 ("sum") or 1 / count ("mean"; 0 when nothing is kept).
__global__ void __launch_bounds__(kReduceThreads) ce_row_grad_kernel(const int32_t* targets, int64_t N, bool mean,
                                                                     float dloss, float* g) {
  __shared__ long long shc[32];
  long long c = 0;
  for (int64_t r = threadIdx.x; r < N; r += kReduceThreads) c += targets[r] >= 0;
  c = block_sum(c, shc);
  const double w = !mean ? 1.0 : (c > 0 ? 1.0 / static_cast<double>(c) : 0.0);
  const float v = static_cast<float>(-static_cast<double>(dloss) * w);
  for (int64_t r = threadIdx.x; r < N; r += kReduceThreads) g[r] = v;
}

}  // namespace

void cross_entropy_forward(const float* logits, const int32_t* targets, int64_t N, int64_t V, float temperature,
                           CeReduction reduction, float* lse, CrossEntropyResult* result, Stream s) {
  const cudaStream_t st = to_stream(s);
  Scratch logp(size_t(std::max<int64_t>(N, 1)) * sizeof(float), st);
  if (N > 0) logprob_forward(logits, targets, N, V, temperature, logp.as<float>(), nullptr, lse, s);
  ce_reduce_kernel<<<1, kReduceThreads, 0, st>>>(logp.as<float>(), targets, N, reduction == CeReduction::Mean, result);
  check_launch("cross_entropy_forward kernel");
}

void cross_entropy_backward(const float* logits, const int32_t* targets, const float* lse, int64_t N, int64_t V,
                            float temperature, CeReduction reduction, float dloss, float* dlogits, bool accumulate,
                            Stream s) {
  if (N <= 0) return;
  const cudaStream_t st = to_stream(s);
  Scratch g(size_t(N) * sizeof(float), st);
  ce_row_grad_kernel<<<1, kReduceThreads, 0, st>>>(targets, N, reduction == CeReduction::Mean, dloss, g.as<float>());
  check_launch("cross_entropy_backward kernel");
  logprob_backward(logits, targets, lse, g.as<float>(), nullptr, N, V, temperature, dlogits, accumulate, s);
}

}  // namespace medgym::cuda
