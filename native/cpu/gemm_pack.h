// Packing of op(A) / op(B) into the micro-panels of the packed GEMM (see gemm_internal.h).
// Plain C++ copies, or with kSimd (only for the AVX2 / AVX-512 implementations, after the
// simd_level() check) AVX loads/stores and AVX register transposes. Instantiated in gemm_pack.cc.
#pragma once
#include <cstdint>

namespace medgym::gemm_detail {

template <int MR, bool kSimd>
void pack_a(bool trans_a, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t k0, int64_t kc,
            float* dst);
template <int NR, bool kSimd>
void pack_b(bool trans_b, const float* B, int64_t ldb, int64_t k0, int64_t kc, int64_t j0, int64_t nc,
            float* dst);

}  // namespace medgym::gemm_detail
