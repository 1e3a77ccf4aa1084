// Internals of gemm_bf16 (gemm_bf16.cc): the per-SIMD-level X packers and block kernels.
// Not a public interface; only gemm_bf16*.cc include it.
//
// Design: every kernel is a dot-product kernel on rows. y[i,j] = sum_k x[i,k] w[j,k] is
// accumulated in one vector of partial sums per (i, j), walking k in steps of `group` (AVX-512:
// 32 k per step, lane l taking k = 2l and 2l+1 of each step), then reduced by one fixed tree. W is
// read straight from its bf16 rows (no packing, no transposition: decode reads it once, as bf16);
// X, small next to W in decode, is packed once per call into zero-padded rows whose element order
// within a group matches the kernel. Each (i, j) so goes through the same operations whatever the
// tile it is in, which gives batch invariance (gemm_bf16.h).
//
// K is cut into blocks of kc (a multiple of group fixed by K and the implementation only); a block
// kernel adds each block's reduced sum into Y as finish() below does.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace medgym::bf16_detail {

// Packed X (gemm_bf16.cc packs it, once per call): rows of kpad elements (kpad = K rounded up to
// group), zero for k >= K, rounded to bf16 in the Bf16Dot mode. Elements are fp32, or bf16
// (uint16_t) for a kernel with x_bf16. With deinterleave, each group of k is stored as its even k
// then its odd k (x0 x2 .. x30 x1 x3 .. x31 for group 32), the order in which the kernel widens a
// bf16 W vector: the low halves of its 32-bit lanes (w << 16) are the even k, the high halves
// (w & 0xFFFF0000) the odd k.
//
// One K block for a rectangle of Y: rows [0, rows) x columns [j0, j1), k in [k0, k0 + kc).
struct Block {
  const void* xp;  // packed X, row 0 of the rectangle (row stride kpad elements)
  int64_t kpad;
  int64_t rows;
  const uint16_t* W;  // W row 0 (row stride ldw); the kernel reads rows [j0, j1), k in [k0, k0 + kc)
  int64_t ldw;
  int64_t j0, j1, k0, kc;
  bool first, last;   // the first / last K block
  float beta;
  const float* bias;  // [N] or null
  float* Y;           // Y row 0 of the rectangle, column 0 (row stride ldy)
  int64_t ldy;
};
using BlockKernel = void (*)(const Block& b);

// A growable 64-byte aligned buffer (one per thread and purpose: thread_local), reused across calls.
class AlignedBuffer {
 public:
  ~AlignedBuffer() { std::free(p_); }
  void* get(int64_t bytes) {
    if (bytes > cap_) {
      std::free(p_);
      p_ = nullptr, cap_ = 0;
      const int64_t n = (bytes + 63) / 64 * 64;
      p_ = std::aligned_alloc(64, static_cast<size_t>(n));
      if (!p_) throw std::bad_alloc();
      cap_ = n;
    }
    return p_;
  }

 private:
  void* p_ = nullptr;
  int64_t cap_ = 0;
};

struct Bf16Impl;
// Packs X rows [r0, r1) (row stride ldx, K columns) into rows of kpad elements at dst (row r at
// r * kpad), as described above; round: round X to bf16 first.
using PackRows = void (*)(const Bf16Impl& im, bool round, const float* X, int64_t ldx, int64_t r0, int64_t r1,
                          int64_t K, int64_t kpad, void* dst);
// The plain C++ packer of any layout (gemm_bf16.cc).
void pack_rows_generic(const Bf16Impl& im, bool round, const float* X, int64_t ldx, int64_t r0, int64_t r1,
                       int64_t K, int64_t kpad, void* dst);

struct Bf16Impl {
  const char* name;
  int group;          // k per kernel step: kc (except in the last block) and kpad are multiples of it
  bool x_bf16;        // packed X holds bf16 (else fp32)
  bool deinterleave;  // packed X groups are stored even k, then odd k
  int64_t kc_max;     // K block limit (the X and W rows of one tile stay in L1)
  int64_t w_block;    // bytes of W per block of columns (kept in L2 while the rows pass over it)
  PackRows pack_rows;
  BlockKernel block;
};

const Bf16Impl& impl_portable();
const Bf16Impl& impl_avx2();           // only valid when simd_level() >= Avx2Fma
const Bf16Impl& impl_avx512();         // only valid when simd_level() >= Avx512
const Bf16Impl& impl_avx512_dpbf16();  // only valid at Avx512 with cpu_features().avx512bf16

// gemm_bf16 with an explicit implementation (for tuning benches); round: round X to bf16 (Bf16Dot).
void gemm_bf16_with(const Bf16Impl& im, bool round, int64_t M, int64_t N, int64_t K, const float* X, int64_t ldx,
                    const uint16_t* W, int64_t ldw, const float* bias, float beta, float* Y, int64_t ldy);

// Adds the block sum s into y, the same way for every element:
//   first block: y = s + beta * y (beta == 0: y = s, y not read); later blocks: y = y + s;
//   then, after the last block, y = y + bias.
inline void finish(float* y, float s, const Block& b, int64_t j) {
  float v = s;
  if (!b.first) v = *y + v;
  else if (b.beta != 0.0f) v = std::fma(b.beta, *y, v);
  if (b.last && b.bias) v = v + b.bias[j];
  *y = v;
}

}  // namespace medgym::bf16_detail
