// GEMM with a bfloat16 weight operand, for pretrained weights kept in bf16 (Qwen2-VL checkpoints)
// without widening them to fp32 in memory:
//
//   Y[M,N] = X[M,K] @ W[N,K]^T  (+ bias[N])  (+ beta * Y)
//
//   X: fp32, row-major, row stride ldx >= K.
//   W: bf16 as uint16_t (the upper half of an IEEE fp32), row-major [N,K] (torch Linear layout,
//      [out_features, in_features]), row stride ldw >= K.
//   Y: fp32, row-major, row stride ldy >= N. beta == 0 overwrites Y (NaN/Inf already there are
//      ignored); bias may be null. K == 0 gives Y = beta * Y + bias.
//
// Modes:
//   Exact    fp32 math on W widened to fp32 (exact: bits << 16). Equal to sgemm on the widened
//            weights up to the order of the fp32 additions.
//   Bf16Dot  X rounded to bf16 first (round to nearest even, NaN kept NaN), products summed in fp32:
//            what PyTorch's bf16 CPU matmul computes. With AVX-512 BF16 (cpu_features().avx512bf16
//            and simd_level() == Avx512) the products go through vdpbf16ps, which treats bf16
//            denormals as zero and flushes denormal partial sums; otherwise X is rounded the same way
//            and the Exact kernel of the level runs (the sums then differ from vdpbf16ps's only in
//            the order of the fp32 additions and in denormals).
//
// Numerics, all SIMD levels: each Y element is one fixed sequence of fp32 operations that depends
// on K, the mode and the SIMD level only. So a row's result is bit-identical whatever M is and
// wherever the row sits in X (BATCH INVARIANT: row i of an M = 300 call equals the same row computed
// with M = 1), and whatever the thread count, tile or column range. (Different SIMD levels, or
// Bf16Dot with and without vdpbf16ps, give different bits.)
//
// Threads: the thread pool (threadpool.h), static partitions; called from inside a parallel
// region it runs serially on the calling thread. Memory: X is packed per call into a buffer of
// the calling thread (at most 16 MB, kept for the next call); W is never copied.
#pragma once
#include <cstdint>
#include <cstring>

namespace medgym {

enum class Bf16Mode { Exact = 0, Bf16Dot = 1 };

void gemm_bf16(Bf16Mode mode, int64_t M, int64_t N, int64_t K, const float* X, int64_t ldx, const uint16_t* W,
               int64_t ldw, const float* bias, float beta, float* Y, int64_t ldy);

// Y = alpha * X W^T + beta * Y on sgemm's packed path (gemm.cc), W's panels widened to fp32 while
// they are packed: for many rows (prefill, the fused head's row blocks) where the packed fp32 kernel
// beats the dot kernels above. Bits equal to sgemm's packed path on the widened W, for any M, row
// place or thread count (batch invariant); different from gemm_bf16's in the order of the additions.
void sgemm_bf16w(int64_t M, int64_t N, int64_t K, float alpha, const float* X, int64_t ldx, const uint16_t* W,
                 int64_t ldw, float beta, float* Y, int64_t ldy);

// Plain reference: triple loop, double accumulation of the exact products (X rounded to bf16 in
// Bf16Dot mode), y = float(dot + bias + beta * y). Slow; for tests and as the ground truth.
void gemm_bf16_ref(Bf16Mode mode, int64_t M, int64_t N, int64_t K, const float* X, int64_t ldx, const uint16_t* W,
                   int64_t ldw, const float* bias, float beta, float* Y, int64_t ldy);

// ---- conversions --------------------------------------------------------------------------------

// fp32 -> bf16, round to nearest even; NaN stays NaN (quieted, sign kept); overflow rounds to Inf.
inline uint16_t fp32_to_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}
// bf16 -> fp32 (exact).
inline float bf16_to_fp32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}
// x rounded to the nearest bf16, as fp32.
inline float round_to_bf16(float x) { return bf16_to_fp32(fp32_to_bf16(x)); }

// Spans of n values (n >= 0).
void fp32_to_bf16(const float* src, uint16_t* dst, int64_t n);
void bf16_to_fp32(const uint16_t* src, float* dst, int64_t n);

}  // namespace medgym
