// Grid-stride element-wise loops with 16-byte packed loads when every pointer allows them.
#pragma once
#include "cuda/common.cuh"

namespace medgym::cuda {

template <typename T>
struct alignas(16) Pack {
  static constexpr int N = 16 / sizeof(T);
  T v[N];
};

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Calls f(i) for every i < n; `packed` (all pointers 16-byte aligned) lets the caller's functor use
// Pack loads for the first n / N * N elements: f_pack(j) for pack j, then f(i) for the tail.
template <int N, typename FPack, typename F>
__device__ __forceinline__ void for_each_packed(int64_t n, bool packed, FPack f_pack, F f) {
  const int64_t tid = blockIdx.x * int64_t(blockDim.x) + threadIdx.x, stride = int64_t(gridDim.x) * blockDim.x;
  int64_t done = 0;
  if (packed) {
    const int64_t np = n / N;
    for (int64_t j = tid; j < np; j += stride) f_pack(j);
    done = np * N;
  }
  for (int64_t i = done + tid; i < n; i += stride) f(i);
}

// Blocks for a memory-bound grid-stride kernel: a few waves over the device.
inline unsigned stream_grid(int64_t items, int threads) {
  const int64_t want = ceil_div(items, threads), cap = int64_t(sm_count()) * 8;
  return static_cast<unsigned>(want < 1 ? 1 : (want > cap ? cap : want));
}

}  // namespace medgym::cuda
