// GELU, tanh approximation (SPEC §1): gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
#pragma once
#include <cstdint>

namespace medgym {

// out[i] = gelu(inp[i]) for i < n.
void gelu_forward(float* out, const float* inp, int64_t n);
// dinp[i] (+)= gelu'(inp[i]) * dout[i]; accumulates into dinp when `accumulate`, else overwrites.
void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n, bool accumulate);

// Plain scalar references (double internally).
void gelu_forward_ref(float* out, const float* inp, int64_t n);
void gelu_backward_ref(float* dinp, const float* inp, const float* dout, int64_t n, bool accumulate);

}  // namespace medgym
