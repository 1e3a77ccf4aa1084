// Gradient-norm clipping twins of cpu/grad_clip.h. Arrays are cut into fixed 4096-element blocks;
// each block's Σg² is taken in double by one thread block (strided thread sums + the fixed block
// tree), and the partials (array order, then block order) are summed by one block with a fixed tree.
// Arrays are passed to the kernels by value, up to 64 per launch.
#include <cmath>
#include <vector>

#include "cuda/common.cuh"

namespace medgym::cuda {

namespace {

constexpr int64_t kBlock = 4096;
constexpr int kPerLaunch = 64;
constexpr int kThreads = 256;

struct ArrayBatch {
  float* ptr[kPerLaunch];
  int64_t len[kPerLaunch];
  int64_t first_block[kPerLaunch + 1];  // prefix sums of ceil(len / kBlock) within the batch
  int count;
};

__device__ __forceinline__ int find_array(const ArrayBatch& b, int64_t blk) {
  int a = 0;
  while (a + 1 < b.count && b.first_block[a + 1] <= blk) ++a;
  return a;
}

__global__ void __launch_bounds__(kThreads) ssq_partial_kernel(ArrayBatch b, double* partial) {
  __shared__ double sh[32];
  const int64_t blk = blockIdx.x;
  const int a = find_array(b, blk);
  const int64_t start = (blk - b.first_block[a]) * kBlock, end = min(b.len[a], start + kBlock);
  const float* g = b.ptr[a];
  double s = 0.0;
  for (int64_t i = start + threadIdx.x; i < end; i += kThreads) s += double(g[i]) * g[i];
  s = block_sum(s, sh);
  if (threadIdx.x == 0) partial[blk] = s;
}

// Sums the partials; writes *sum_sq and/or the clip decision (result, coef) when given.
__global__ void __launch_bounds__(1024) ssq_total_kernel(const double* partial, int64_t n, double* sum_sq,
                                                         double max_norm, GradClipResult* result, float* coef) {
  __shared__ double sh[32];
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += 1024) s += partial[i];
  s = block_sum(s, sh);
  if (threadIdx.x != 0) return;
  if (sum_sq) *sum_sq = s;
  if (!result) return;
  const double norm = sqrt(s);
  GradClipResult r{norm, 1.0, false, isfinite(norm) != 0};
  float c = 1.0f;
  if (r.finite) {
    const double k = max_norm / (norm + 1e-6);
    if (k < 1.0) r.scale = k, r.clipped = true, c = static_cast<float>(k);
  }
  *result = r;
  *coef = r.clipped ? c : 0.0f;  // 0: nothing to scale
}

__global__ void __launch_bounds__(kThreads) scale_kernel(ArrayBatch b, const float* coef) {
  const float c = *coef;
  if (c == 0.0f) return;
  const int64_t blk = blockIdx.x;
  const int a = find_array(b, blk);
  const int64_t start = (blk - b.first_block[a]) * kBlock, end = min(b.len[a], start + kBlock);
  float* g = b.ptr[a];
  for (int64_t i = start + threadIdx.x; i < end; i += kThreads) g[i] *= c;
}

// Splits the arrays into launches of up to kPerLaunch non-empty arrays; blocks are numbered globally.
std::vector<ArrayBatch> make_batches(float* const* arrays, const int64_t* lengths, int64_t count, int64_t* total) {
  std::vector<ArrayBatch> out;
  *total = 0;
  ArrayBatch cur{};
  auto flush = [&] {
    if (cur.count) out.push_back(cur);
    cur = ArrayBatch{};
  };
  for (int64_t a = 0; a < count; ++a) {
    if (lengths[a] <= 0) continue;
    if (cur.count == kPerLaunch) flush();
    cur.ptr[cur.count] = arrays[a];
    cur.len[cur.count] = lengths[a];
    cur.first_block[cur.count + 1] = cur.first_block[cur.count] + ceil_div(lengths[a], kBlock);
    cur.count += 1;
  }
  flush();
  for (const ArrayBatch& b : out) *total += b.first_block[b.count];
  return out;
}

void sum_squares(const std::vector<ArrayBatch>& batches, double* partial, cudaStream_t s) {
  int64_t offset = 0;
  for (const ArrayBatch& b : batches) {
    const int64_t blocks = b.first_block[b.count];
    if (blocks > 0x7fffffff) throw std::invalid_argument("grad_clip: array too long");
    ssq_partial_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, s>>>(b, partial + offset);
    check_launch("grad_sum_squares kernel");
    offset += blocks;
  }
}

}  // namespace

void grad_sum_squares(const float* const* arrays, const int64_t* lengths, int64_t count, double* sum_sq, Stream s) {
  const cudaStream_t st = to_stream(s);
  int64_t total = 0;
  const auto batches = make_batches(const_cast<float* const*>(arrays), lengths, count, &total);
  Scratch partial(size_t(std::max<int64_t>(total, 1)) * sizeof(double), st);
  sum_squares(batches, partial.as<double>(), st);
  ssq_total_kernel<<<1, 1024, 0, st>>>(partial.as<double>(), total, sum_sq, 0.0, nullptr, nullptr);
  check_launch("grad_sum_squares kernel");
}

void grad_clip(float* const* arrays, const int64_t* lengths, int64_t count, double max_norm, GradClipResult* result,
               Stream s) {
  const cudaStream_t st = to_stream(s);
  int64_t total = 0;
  const auto batches = make_batches(arrays, lengths, count, &total);
  Scratch partial(size_t(std::max<int64_t>(total, 1)) * sizeof(double) + 16, st);
  double* part = partial.as<double>();
  float* coef = reinterpret_cast<float*>(part + std::max<int64_t>(total, 1));
  sum_squares(batches, part, st);
  ssq_total_kernel<<<1, 1024, 0, st>>>(part, total, nullptr, max_norm, result, coef);
  check_launch("grad_clip kernel");
  for (const ArrayBatch& b : batches) {
    scale_kernel<<<static_cast<unsigned>(b.first_block[b.count]), kThreads, 0, st>>>(b, coef);
    check_launch("grad_clip kernel");
  }
}

}  // namespace medgym::cuda
