// The two GEMM paths of batch-invariant inference (Y = X W^T): the dot path for a few rows (decode
// steps) and the packed path for many (prefill). Each computes every element of Y with the same
// operations whatever M, the tiles or the thread split, so a row's result depends only on which path
// runs it: callers choose the path per sequence (by its own row count), never per call, and a
// sequence's numbers do not depend on what shares its batch (SPEC §7). Used by the medgym-vlm
// generation forward (extend.cc) and the Qwen engine (qwen/text.cc).
#pragma once
#include <cstdint>

#include "cpu/gemm_bf16.h"

namespace medgym::model {

// Y[M, N] = X[M, K] @ W[N, K]^T + beta * Y on the packed path (`packed`) or the dot path.
void linear(bool packed, int64_t M, int64_t N, int64_t K, const float* X, const float* W, float beta, float* Y);

// The same with W in bf16 (weights kept as the checkpoint has them): the packed path widens W's panels
// while packing (sgemm_bf16w), the dot path reads W in place (gemm_bf16 in `dot_mode`). Y = X W^T (+ bias).
void linear_bf16(bool packed, int64_t M, int64_t N, int64_t K, const float* X, const uint16_t* W, const float* bias,
                 float* Y, Bf16Mode dot_mode = Bf16Mode::Exact);

}  // namespace medgym::model
