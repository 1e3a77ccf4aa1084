// Portable block kernel of gemm_bf16: plain C++, one fp32 sum per (i, j) running over k in order.
// Four columns at a time for instruction-level parallelism (each sum is still its own chain).
#include "cpu/gemm_bf16.h"
#include "cpu/gemm_bf16_internal.h"

namespace medgym::bf16_detail {

namespace {

template <int RN>
void tile(const Block& b, int64_t i, int64_t j) {
  const float* x = static_cast<const float*>(b.xp) + i * b.kpad + b.k0;
  const uint16_t* w[RN];
  float s[RN];
  for (int q = 0; q < RN; ++q) w[q] = b.W + (j + q) * b.ldw + b.k0, s[q] = 0.0f;
  for (int64_t k = 0; k < b.kc; ++k)
    for (int q = 0; q < RN; ++q) s[q] += x[k] * bf16_to_fp32(w[q][k]);
  for (int q = 0; q < RN; ++q) finish(b.Y + i * b.ldy + j + q, s[q], b, j + q);
}

void block(const Block& b) {
  for (int64_t i = 0; i < b.rows; ++i) {
    int64_t j = b.j0;
    for (; j + 4 <= b.j1; j += 4) tile<4>(b, i, j);
    for (; j < b.j1; ++j) tile<1>(b, i, j);
  }
}

}  // namespace

const Bf16Impl& impl_portable() {
  static const Bf16Impl impl{"portable", 1, false, false, 2048, 384 << 10, pack_rows_generic, block};
  return impl;
}

}  // namespace medgym::bf16_detail
