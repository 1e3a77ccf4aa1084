// LayerNorm twins of cpu/layernorm.h (fp32 and bf16 activations; statistics and parameters fp32).
//  - forward: one warp per row; mean, then Σ(x-mean)² (two-pass variance, as the CPU), then the
//    output; the row is re-read from L1/L2, not HBM.
//  - backward: each block owns a contiguous range of rows, one warp per row; a warp keeps its
//    dweight/dbias partials in its own shared-memory slice (no atomics), the block adds its warps in
//    warp order into one partial per block, and a last kernel adds the block partials in block order
//    into dweight/dbias. Deterministic for a given device (the block count follows the SM count).
#include "cuda/common.cuh"

namespace medgym::cuda {

namespace {

constexpr int kFwdWarps = 8;  // rows per forward block
constexpr int kBwdWarps = 4;  // warps per backward block (shared memory: 2 C floats per warp)

template <typename T>
__global__ void __launch_bounds__(kFwdWarps * 32) ln_forward_kernel(T* out, float* mean, float* rstd, const T* inp,
                                                                    const float* w, const float* b, int64_t N,
                                                                    int64_t C, float eps) {
  const int lane = threadIdx.x & 31;
  const int64_t r = blockIdx.x * int64_t(kFwdWarps) + (threadIdx.x >> 5);
  if (r >= N) return;
  const T* x = inp + r * C;
  float s = 0.0f;
  for (int64_t i = lane; i < C; i += 32) s += load_f(x + i);
  const float m = warp_sum(s) / static_cast<float>(C);
  float v = 0.0f;
  for (int64_t i = lane; i < C; i += 32) {
    const float d = load_f(x + i) - m;
    v += d * d;
  }
  const float rs = 1.0f / sqrtf(warp_sum(v) / static_cast<float>(C) + eps);
  T* o = out + r * C;
  for (int64_t i = lane; i < C; i += 32) store_f(o + i, (load_f(x + i) - m) * rs * w[i] + b[i]);
  if (lane == 0) {
    if (mean) mean[r] = m;
    if (rstd) rstd[r] = rs;
  }
}

// partial [gridDim.x, 2, C]: this block's Σ dout*xhat and Σ dout over its rows.
template <typename T>
__global__ void __launch_bounds__(kBwdWarps * 32) ln_backward_kernel(T* dinp, float* partial, const T* dout,
                                                                     const T* inp, const float* w, const float* mean,
                                                                     const float* rstd, int64_t N, int64_t C,
                                                                     int64_t rows_per_block, bool acc) {
  extern __shared__ float sh[];  // [kBwdWarps][2][C]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float* dw = sh + int64_t(warp) * 2 * C;
  float* db = dw + C;
  for (int64_t i = lane; i < C; i += 32) dw[i] = db[i] = 0.0f;
  const int64_t r0 = blockIdx.x * rows_per_block, r1 = min(N, r0 + rows_per_block);
  for (int64_t r = r0 + warp; r < r1; r += kBwdWarps) {
    const T* x = inp + r * C;
    const T* dy = dout + r * C;
    const float m = mean[r], rs = rstd[r];
    float sg = 0.0f, sgx = 0.0f;
    for (int64_t i = lane; i < C; i += 32) {
      const float xh = (load_f(x + i) - m) * rs, g = load_f(dy + i) * w[i];
      sg += g;
      sgx += g * xh;
    }
    sg = warp_sum(sg) / static_cast<float>(C);
    sgx = warp_sum(sgx) / static_cast<float>(C);
    T* dx = dinp + r * C;
    for (int64_t i = lane; i < C; i += 32) {  // lane owns columns i: its dw/db entries are private
      const float dyi = load_f(dy + i), xh = (load_f(x + i) - m) * rs, g = dyi * w[i];
      dw[i] += dyi * xh;
      db[i] += dyi;
      const float d = rs * (g - sg - xh * sgx);
      store_f(dx + i, acc ? load_f(dx + i) + d : d);
    }
  }
  __syncthreads();
  float* out = partial + int64_t(blockIdx.x) * 2 * C;
  for (int64_t i = threadIdx.x; i < 2 * C; i += blockDim.x) {
    float s = 0.0f;
    for (int k = 0; k < kBwdWarps; ++k) s += sh[int64_t(k) * 2 * C + i];  // warp order
    out[i] = s;
  }
}

__global__ void ln_param_grad_kernel(float* dweight, float* dbias, const float* partial, int blocks, int64_t C) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < C; i += int64_t(gridDim.x) * blockDim.x) {
    float sw = 0.0f, sb = 0.0f;
    for (int k = 0; k < blocks; ++k) {  // block order
      sw += partial[int64_t(k) * 2 * C + i];
      sb += partial[int64_t(k) * 2 * C + C + i];
    }
    dweight[i] += sw;
    dbias[i] += sb;
  }
}

template <typename T>
void forward(T* out, float* mean, float* rstd, const T* inp, const float* w, const float* b, int64_t N, int64_t C,
             float eps, cudaStream_t s, const char* name) {
  if (N <= 0 || C <= 0) return;
  ln_forward_kernel<<<static_cast<unsigned>(ceil_div(N, kFwdWarps)), kFwdWarps * 32, 0, s>>>(out, mean, rstd, inp, w,
                                                                                              b, N, C, eps);
  check_launch(name);
}

template <typename T>
void backward(T* dinp, float* dweight, float* dbias, const T* dout, const T* inp, const float* w, const float* mean,
              const float* rstd, int64_t N, int64_t C, bool acc, cudaStream_t s, const char* name) {
  if (N <= 0 || C <= 0) return;
  const size_t smem = size_t(kBwdWarps) * 2 * C * sizeof(float);
  if (smem > 200 * 1024) throw std::invalid_argument(std::string(name) + ": C too large (shared-memory partials)");
  // Enough blocks for two per SM, each at least 4 rows per warp.
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>(2 * sm_count(), ceil_div(N, 4 * kBwdWarps)));
  const int64_t rows_per_block = ceil_div(N, blocks);
  const int grid = static_cast<int>(ceil_div(N, rows_per_block));
  Scratch partial(size_t(grid) * 2 * C * sizeof(float), s);
  auto kernel = ln_backward_kernel<T>;
  allow_smem(kernel, smem, name);
  kernel<<<grid, kBwdWarps * 32, smem, s>>>(dinp, partial.as<float>(), dout, inp, w, mean, rstd, N, C, rows_per_block,
                                             acc);
  check_launch(name);
  ln_param_grad_kernel<<<grid_for(C, 256), 256, 0, s>>>(dweight, dbias, partial.as<float>(), grid, C);
  check_launch(name);
}

}  // namespace

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias,
                       int64_t N, int64_t C, float eps, Stream s) {
  forward(out, mean, rstd, inp, weight, bias, N, C, eps, to_stream(s), "layernorm_forward kernel");
}
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C,
                        bool accumulate_dinp, Stream s) {
  backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C, accumulate_dinp, to_stream(s),
           "layernorm_backward kernel");
}
void layernorm_forward_bf16(Bf16* out, float* mean, float* rstd, const Bf16* inp, const float* weight,
                            const float* bias, int64_t N, int64_t C, float eps, Stream s) {
  forward(to_bf(out), mean, rstd, to_bf(inp), weight, bias, N, C, eps, to_stream(s), "layernorm_forward_bf16 kernel");
}
void layernorm_backward_bf16(Bf16* dinp, float* dweight, float* dbias, const Bf16* dout, const Bf16* inp,
                             const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C,
                             bool accumulate_dinp, Stream s) {
  backward(to_bf(dinp), dweight, dbias, to_bf(dout), to_bf(inp), weight, mean, rstd, N, C, accumulate_dinp,
           to_stream(s), "layernorm_backward_bf16 kernel");
}

}  // namespace medgym::cuda
