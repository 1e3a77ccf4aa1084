// Block-tile GEMM engines shared by gemm.cu and fused_linear_logprob.cu. Each `compute` makes one
// thread block compute the fp32 tile  T[BM,BN] = op(A)[m0:m0+BM, :] @ op(B)[:, n0:n0+BN]  over the
// whole K and leaves it in shared memory (float, row stride TLD, ready after the call returns; the
// call ends with __syncthreads). Rows/columns past M/N/K read as zeros, so T is exact at the edges;
// the caller's epilogue decides what to write. Operand layouts as in cpu/gemm.h:
//   op(A) [M,K]: A stored [M,K] (TA = false) or [K,M] (TA = true), row stride lda
//   op(B) [K,N]: B stored [K,N] (TB = false) or [N,K] (TB = true), row stride ldb
//
// TcTile: bf16 operands on tensor cores (WMMA 16x16x16, fp32 accumulation), 128x128x32 tiles,
//   8 warps of 64x32, a 3-stage cp.async pipeline. smem tiles keep the global layout (k-contiguous
//   or m/n-contiguous) and the WMMA fragment layout (row_major / col_major) absorbs the transposes.
// SimtTile: fp32 operands, plain FMA (no TF32), 64x64x16 tiles, 4x4 outputs per thread.
#pragma once
#include <mma.h>

#include <type_traits>

#include "cuda/common.cuh"

namespace medgym::cuda {

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int src_bytes) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  // Copies src_bytes (0..16) and zero-fills the rest of the 16 bytes.
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// True when rows of a bf16 matrix can be read in 16-byte chunks (8 elements).
inline bool bf16_rows_vectorizable(const void* p, int64_t ld) {
  return ld % 8 == 0 && reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

// Rows [r0, r0+ROWS) x cols [c0, c0+COLS) of a row-major bf16 matrix G (row stride ld; valid region
// rows < rmax, cols < cmax) into shared S (row stride SLD), zeros outside. `vec`: 16-byte cp.async
// chunks (asynchronous: the caller commits and waits); otherwise element loads (synchronous).
template <int ROWS, int COLS, int SLD, int THREADS>
__device__ __forceinline__ void load_tile_bf16(__nv_bfloat16* S, const __nv_bfloat16* G, int64_t ld, int64_t r0,
                                               int64_t c0, int64_t rmax, int64_t cmax, bool vec) {
  static_assert(COLS % 8 == 0 && SLD % 8 == 0 && (ROWS * COLS / 8) % THREADS == 0, "tile shape");
  if (vec) {
    for (int i = threadIdx.x; i < ROWS * COLS / 8; i += THREADS) {
      const int r = i / (COLS / 8), c = (i % (COLS / 8)) * 8;
      const int64_t gr = r0 + r, gc = c0 + c;
      int bytes = 0;
      const __nv_bfloat16* src = G;
      if (gr < rmax && gc < cmax) {
        const int64_t left = cmax - gc;
        bytes = (left >= 8 ? 8 : static_cast<int>(left)) * 2;
        src = G + gr * ld + gc;
      }
      cp_async16(S + r * SLD + c, src, bytes);
    }
  } else {
    const __nv_bfloat16 zero = __float2bfloat16_rn(0.0f);
#pragma unroll 1
    for (int i = threadIdx.x; i < ROWS * COLS; i += THREADS) {
      const int r = i / COLS, c = i % COLS;
      const int64_t gr = r0 + r, gc = c0 + c;
      S[r * SLD + c] = (gr < rmax && gc < cmax) ? G[gr * ld + gc] : zero;
    }
  }
}

struct TcTile {
  using In = __nv_bfloat16;
  static constexpr int BM = 128, BN = 128, BK = 32, THREADS = 256, STAGES = 3, MIN_BLOCKS = 2;
  static constexpr int WARPS_N = 4, WM = 64, WN = 32, FM = WM / 16, FN = WN / 16;
  static constexpr int TLD = BN + 4;  // row stride of the fp32 result tile
  // Per stage, each operand takes at most max(128 x 40, 32 x 136) = 5120 elements.
  static constexpr int OP_ELEMS = 5120, STAGE_ELEMS = 2 * OP_ELEMS;
  static constexpr size_t kPipeBytes = size_t(STAGES) * STAGE_ELEMS * 2, kTileBytes = size_t(BM) * TLD * 4;
  static constexpr size_t kSmem = kPipeBytes > kTileBytes ? kPipeBytes : kTileBytes;
  static_assert(BM * (BK + 8) <= OP_ELEMS && BK * (BM + 8) <= OP_ELEMS && BK * (BN + 8) <= OP_ELEMS &&
                    BN * (BK + 8) <= OP_ELEMS,
                "operand stage size");
  static_assert((WM * 2) == BM && (WN * WARPS_N) == BN && THREADS == 32 * 2 * WARPS_N, "warp layout");

  template <bool TA, bool TB>
  __device__ static void compute(const In* A, int64_t lda, bool vec_a, const In* B, int64_t ldb, bool vec_b,
                                 int64_t M, int64_t N, int64_t K, int64_t m0, int64_t n0, unsigned char* smem) {
    namespace wmma = nvcuda::wmma;
    constexpr int A_LD = TA ? BM + 8 : BK + 8;  // stage layout: [BK][BM+8] or [BM][BK+8]
    constexpr int B_LD = TB ? BK + 8 : BN + 8;  //               [BN][BK+8] or [BK][BN+8]
    using LayA = std::conditional_t<TA, wmma::col_major, wmma::row_major>;
    using LayB = std::conditional_t<TB, wmma::col_major, wmma::row_major>;
    In* sm = reinterpret_cast<In*>(smem);
    const int warp = threadIdx.x / 32, wm = warp / WARPS_N, wn = warp % WARPS_N;

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[FM][FN];
#pragma unroll
    for (int i = 0; i < FM; ++i)
#pragma unroll
      for (int j = 0; j < FN; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

    auto load_stage = [&](int stage, int64_t k0) {
      In* As = sm + stage * STAGE_ELEMS;
      In* Bs = As + OP_ELEMS;
      if (TA)
        load_tile_bf16<BK, BM, A_LD, THREADS>(As, A, lda, k0, m0, K, M, vec_a);
      else
        load_tile_bf16<BM, BK, A_LD, THREADS>(As, A, lda, m0, k0, M, K, vec_a);
      if (TB)
        load_tile_bf16<BN, BK, B_LD, THREADS>(Bs, B, ldb, n0, k0, N, K, vec_b);
      else
        load_tile_bf16<BK, BN, B_LD, THREADS>(Bs, B, ldb, k0, n0, K, N, vec_b);
    };

    const int64_t nk = ceil_div(K, BK);
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
      if (s < nk) load_stage(s, int64_t(s) * BK);
      cp_async_commit();  // empty groups keep the wait counts uniform
    }
    for (int64_t kt = 0; kt < nk; ++kt) {
      cp_async_wait<STAGES - 2>();  // stage kt has landed (this thread's copies) ...
      __syncthreads();              // ... and everyone's; the slot refilled below was read at kt - 1
      const int64_t next = kt + STAGES - 1;
      if (next < nk) load_stage(static_cast<int>(next % STAGES), next * BK);
      cp_async_commit();
      const In* As = sm + (kt % STAGES) * STAGE_ELEMS;
      const In* Bs = As + OP_ELEMS;
#pragma unroll
      for (int kk = 0; kk < BK; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, In, LayA> a[FM];
        wmma::fragment<wmma::matrix_b, 16, 16, 16, In, LayB> b[FN];
#pragma unroll
        for (int i = 0; i < FM; ++i) {
          const int m = wm * WM + i * 16;
          wmma::load_matrix_sync(a[i], TA ? As + kk * A_LD + m : As + m * A_LD + kk, A_LD);
        }
#pragma unroll
        for (int j = 0; j < FN; ++j) {
          const int n = wn * WN + j * 16;
          wmma::load_matrix_sync(b[j], TB ? Bs + n * B_LD + kk : Bs + kk * B_LD + n, B_LD);
        }
#pragma unroll
        for (int i = 0; i < FM; ++i)
#pragma unroll
          for (int j = 0; j < FN; ++j) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
      }
    }
    cp_async_wait<0>();
    __syncthreads();  // the pipeline buffers become the result tile
    float* tile = reinterpret_cast<float*>(smem);
#pragma unroll
    for (int i = 0; i < FM; ++i)
#pragma unroll
      for (int j = 0; j < FN; ++j)
        wmma::store_matrix_sync(tile + (wm * WM + i * 16) * TLD + wn * WN + j * 16, acc[i][j], TLD,
                                wmma::mem_row_major);
    __syncthreads();
  }
};

struct SimtTile {
  using In = float;
  static constexpr int BM = 64, BN = 64, BK = 16, THREADS = 256, MIN_BLOCKS = 2;
  static constexpr int SLD = 65;      // [BK][BM] / [BK][BN] operand tiles, padded against bank conflicts
  static constexpr int TLD = BN + 1;  // row stride of the result tile
  static constexpr size_t kPipeBytes = size_t(2) * BK * SLD * 4, kTileBytes = size_t(BM) * TLD * 4;
  static constexpr size_t kSmem = kPipeBytes > kTileBytes ? kPipeBytes : kTileBytes;

  template <bool TA, bool TB>
  __device__ static void compute(const In* A, int64_t lda, bool, const In* B, int64_t ldb, bool, int64_t M,
                                 int64_t N, int64_t K, int64_t m0, int64_t n0, unsigned char* smem) {
    float* As = reinterpret_cast<float*>(smem);  // As[k * SLD + m] = op(A)[m0 + m, k0 + k]
    float* Bs = As + BK * SLD;                   // Bs[k * SLD + n] = op(B)[k0 + k, n0 + n]
    const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
    float acc[4][4] = {};
    for (int64_t k0 = 0; k0 < K; k0 += BK) {
      for (int i = threadIdx.x; i < BM * BK; i += THREADS) {
        // Consecutive threads walk the contiguous dimension of the stored operand (coalesced).
        const int m = TA ? i % BM : i / BK, k = TA ? i / BM : i % BK;
        const int64_t gm = m0 + m, gk = k0 + k;
        As[k * SLD + m] = (gm < M && gk < K) ? (TA ? A[gk * lda + gm] : A[gm * lda + gk]) : 0.0f;
      }
      for (int i = threadIdx.x; i < BK * BN; i += THREADS) {
        const int n = TB ? i / BK : i % BN, k = TB ? i % BK : i / BN;
        const int64_t gn = n0 + n, gk = k0 + k;
        Bs[k * SLD + n] = (gn < N && gk < K) ? (TB ? B[gn * ldb + gk] : B[gk * ldb + gn]) : 0.0f;
      }
      __syncthreads();
#pragma unroll
      for (int k = 0; k < BK; ++k) {
        float a[4], b[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) a[i] = As[k * SLD + ty + 16 * i];
#pragma unroll
        for (int j = 0; j < 4; ++j) b[j] = Bs[k * SLD + tx + 16 * j];
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
      }
      __syncthreads();
    }
    float* tile = reinterpret_cast<float*>(smem);
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) tile[(ty + 16 * i) * TLD + tx + 16 * j] = acc[i][j];
    __syncthreads();
  }
};

}  // namespace medgym::cuda
