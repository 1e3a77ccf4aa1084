// Row-wise kernels over [N, V] matrices: a row is handled by TPR threads (TPR = 32: one warp per
// row, 8 rows per 256-thread block; TPR = 256: one block per row). Reductions are the deterministic
// butterflies / warp-ordered block reductions of common.cuh, so the result depends only on TPR.
#pragma once
#include "cuda/common.cuh"

namespace medgym::cuda {

constexpr int kRowBlock = 256;
// Threads per row for rows of length V: a warp for short rows, the whole block for long ones.
inline int threads_per_row(int64_t V) { return V <= 2048 ? 32 : 256; }
inline unsigned row_blocks(int64_t N, int tpr) { return static_cast<unsigned>(ceil_div(N, kRowBlock / tpr)); }

template <int TPR>
struct Row {
  static_assert(TPR == 32 || TPR == kRowBlock, "a warp or the whole block per row");
  static constexpr int PER_BLOCK = kRowBlock / TPR;
  __device__ static int64_t index() { return blockIdx.x * int64_t(PER_BLOCK) + threadIdx.x / TPR; }
  __device__ static int lane() { return threadIdx.x % TPR; }

  // `shared`: 32 floats (only used when TPR is the block).
  __device__ static float sum(float v, float* shared) {
    if constexpr (TPR == 32) return warp_sum(v);
    else return block_sum(v, shared);
  }
  __device__ static float max(float v, float* shared) {
    if constexpr (TPR == 32) return warp_max(v);
    else return block_max(v, shared);
  }
  // `shared`: 3 x 32 floats. Warps are merged in warp order by every thread (same bits everywhere).
  __device__ static LseState merge(LseState st, float* shared) {
    st = warp_lse_merge(st);
    if constexpr (TPR == 32) {
      return st;
    } else {
      const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
      __syncthreads();
      if (lane == 0) shared[warp] = st.m, shared[32 + warp] = st.s, shared[64 + warp] = st.u;
      __syncthreads();
      LseState r{shared[0], shared[32], shared[64]};
      for (int w = 1; w < nwarps; ++w) r = lse_merge(r, LseState{shared[w], shared[32 + w], shared[64 + w]});
      return r;
    }
  }
};

// Dispatch a row kernel template on TPR: launch_rows(V, [&](auto tpr) { kernel<tpr.value><<<...>>>(); }).
template <typename F>
void with_tpr(int64_t V, F f) {
  if (threads_per_row(V) == 32) f(std::integral_constant<int, 32>{});
  else f(std::integral_constant<int, kRowBlock>{});
}

}  // namespace medgym::cuda
