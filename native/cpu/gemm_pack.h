// Packing of op(A) / op(B) into the micro-panels of the packed GEMM (see gemm_internal.h).
// Plain C++ templates: the copies are memory-bound, so one portable version serves every SIMD
// level (the compiler vectorizes the contiguous cases). Instantiated in gemm_pack.cc.
#pragma once
#include <cstdint>

namespace medgym::gemm_detail {

template <int MR>
void pack_a(bool trans_a, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t k0, int64_t kc,
            float* dst);
template <int NR>
void pack_b(bool trans_b, const float* B, int64_t ldb, int64_t k0, int64_t kc, int64_t j0, int64_t nc,
            float* dst);

}  // namespace medgym::gemm_detail
