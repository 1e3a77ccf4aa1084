// Row-wise operations of the Qwen engine over packed rows [N, width] (parallel over rows).
#pragma once
#include <cstdint>

#include "model/qwen/weights.h"

namespace medgym::qwen {

// Y[M, out] = X[M, in] W^T (+ b) on the packed path, or the dot path (`packed` false: decode rows);
// either way a row's result does not depend on M (model/linear_paths.h). W in fp32 or bf16.
void linear(int64_t M, const Lin& l, const float* X, float* Y, bool packed = true);
// RMSNorm (x * rsqrt(mean(x²) + eps) * w), row by row; out may alias x.
void rmsnorm(int64_t N, int64_t D, const float* x, const float* w, float eps, float* out);
// LayerNorm with weight and bias; out may not alias x.
void layernorm(int64_t N, int64_t D, const float* x, const float* w, const float* b, float eps, float* out);
// In place over n values.
void quick_gelu(int64_t n, float* x);   // x σ(1.702 x)
void gelu_erf(int64_t n, float* x);     // exact GELU, x Φ(x)
// g[i] = silu(g[i]) * u[i] for rows of n values with row strides (the gate and up halves of one buffer).
void silu_mul(int64_t rows, int64_t n, float* g, int64_t g_stride, const float* u, int64_t u_stride);
// y += x (n values).
void add_inplace(int64_t n, float* y, const float* x);

// Rotary embedding in place: for each row r, heads h < H at x + r*stride + h*hd, pairs (i, i + hd/2)
// rotated by angle[r*(hd/2) + i]:  x_i' = x_i cos - x_{i+hd/2} sin,  x_{i+hd/2}' = x_{i+hd/2} cos + x_i sin.
// cos/sin are [rows, hd/2].
void rotate(int64_t rows, int64_t H, int64_t hd, float* x, int64_t stride, const float* cos, const float* sin);

}  // namespace medgym::qwen
