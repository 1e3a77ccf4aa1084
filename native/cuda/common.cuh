// Internal helpers of the CUDA kernels (not part of the API): error checks, bf16 access, deterministic
// warp/block reductions, stream-ordered scratch memory. Included by native/cuda/*.cu only.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "cuda/kernels.h"

namespace medgym::cuda {

[[noreturn]] void throw_cuda_error(cudaError_t err, const char* call);  // runtime.cu

inline void check(cudaError_t err, const char* call) {
  if (err != cudaSuccess) throw_cuda_error(err, call);
}
// After a <<<...>>> launch: a bad configuration is reported here, naming the kernel.
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }
inline cudaStream_t to_stream(Stream s) { return static_cast<cudaStream_t>(s); }

inline const __nv_bfloat16* to_bf(const Bf16* p) { return reinterpret_cast<const __nv_bfloat16*>(p); }
inline __nv_bfloat16* to_bf(Bf16* p) { return reinterpret_cast<__nv_bfloat16*>(p); }

__host__ __device__ inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
// Grid size for a grid-stride loop over n items: enough blocks to fill the device, capped.
inline unsigned grid_for(int64_t n, int threads, int64_t cap = 65535) {
  int64_t g = ceil_div(n, threads);
  return static_cast<unsigned>(g < 1 ? 1 : (g > cap ? cap : g));
}
int sm_count();  // multiprocessors of the current device (cached per device; runtime.cu)

// Opts a kernel into more than 48 KiB of dynamic shared memory (once per kernel and device).
template <typename Kernel>
void allow_smem(Kernel k, size_t bytes, const char* name) {
  if (bytes > 48 * 1024) check(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)), name);
}

// Scratch memory from the device's stream-ordered pool, released on the same stream.
class Scratch {
 public:
  Scratch(size_t bytes, cudaStream_t s) : s_(s) {
    if (bytes) check(cudaMallocAsync(&p_, bytes, s), "cudaMallocAsync (kernel scratch)");
  }
  ~Scratch() {
    if (p_) cudaFreeAsync(p_, s_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(p_);
  }

 private:
  void* p_ = nullptr;
  cudaStream_t s_;
};

// ---------------------------------------------------------------------------------------------
// Element access: fp32 arithmetic over fp32 or bf16 storage.
__device__ __forceinline__ float load_f(const float* p) { return *p; }
__device__ __forceinline__ float load_f(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void store_f(float* p, float x) { *p = x; }
__device__ __forceinline__ void store_f(__nv_bfloat16* p, float x) { *p = __float2bfloat16_rn(x); }

// ---------------------------------------------------------------------------------------------
// Reductions. XOR butterflies leave the same bits in every lane (a + b == b + a exactly), and the
// block versions combine warps in warp order: the result depends only on the block shape.
template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
// `shared` holds 32 T; the call synchronizes the block twice (safe to call repeatedly).
template <typename T>
__device__ T block_sum(T v, T* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // `shared` may still be read by a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < nwarps ? shared[lane] : T(0);
  return warp_sum(v);
}
__device__ inline float block_max(float v, float* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < nwarps ? shared[lane] : -INFINITY;
  return warp_max(v);
}

// ---------------------------------------------------------------------------------------------
// Online log-sum-exp with the entropy term, as the CPU's logprob.cc: for z_k (already divided by the
// temperature), m = max z, s = Σ e^(z-m), u = Σ e^(z-m) (z-m), with z - m floored at -100 (so -inf
// logits contribute exactly 0) and e^t flushed to 0 below -87.34 as the CPU's exp does.
// lse = m + log s, entropy = log s - u / s.
constexpr float kLseFloor = -100.0f;
__device__ __forceinline__ float exp_flush(float t) { return t < -87.3365478515625f ? 0.0f : expf(t); }

struct LseState {
  float m, s, u;
};
__device__ __forceinline__ LseState lse_empty() { return {-FLT_MAX, 0.0f, 0.0f}; }
__device__ __forceinline__ void lse_add(LseState& st, float z) {
  if (z > st.m) {  // rescale to the new max (NaN z never gets here: it poisons s below instead)
    const float d = fmaxf(st.m - z, kLseFloor), f = exp_flush(d);
    st.u = f * (st.u + d * st.s);
    st.s = f * st.s;
    st.m = z;
  }
  const float t = fmaxf(z - st.m, kLseFloor);
  const float e = z != z ? z : exp_flush(t);  // a NaN logit makes the row NaN
  st.s += e;
  st.u += e * t;
}
// Merge of two states; symmetric in its arguments bit for bit (so butterflies agree across lanes).
__device__ __forceinline__ LseState lse_merge(const LseState& a, const LseState& b) {
  const float m = fmaxf(a.m, b.m);
  const float da = fmaxf(a.m - m, kLseFloor), db = fmaxf(b.m - m, kLseFloor);
  const float fa = exp_flush(da), fb = exp_flush(db);
  LseState r;
  r.m = m;
  // _rn intrinsics: no FMA contraction, which would round the two orders differently.
  r.s = __fadd_rn(__fmul_rn(fa, a.s), __fmul_rn(fb, b.s));
  r.u = __fadd_rn(__fmul_rn(fa, __fadd_rn(a.u, __fmul_rn(da, a.s))), __fmul_rn(fb, __fadd_rn(b.u, __fmul_rn(db, b.s))));
  return r;
}
__device__ __forceinline__ LseState warp_lse_merge(LseState st) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    LseState other{__shfl_xor_sync(0xffffffffu, st.m, o), __shfl_xor_sync(0xffffffffu, st.s, o),
                   __shfl_xor_sync(0xffffffffu, st.u, o)};
    st = lse_merge(st, other);
  }
  return st;
}
__device__ __forceinline__ float lse_value(const LseState& st) { return st.m + logf(st.s); }
__device__ __forceinline__ float lse_entropy(const LseState& st) { return logf(st.s) - st.u / st.s; }

}  // namespace medgym::cuda
