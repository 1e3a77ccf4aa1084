// LayerNorm over the last dimension (SPEC §1: eps 1e-5, with weight and bias), forward and backward.
//   mean = Σx/C, rstd = 1/sqrt(Σ(x-mean)²/C + eps)  (biased variance, as torch.nn.LayerNorm)
//   out  = (x - mean) * rstd * weight + bias
#pragma once
#include <cstdint>

namespace medgym {

// Rows of inp [N, C] -> out [N, C]; saves mean [N] and rstd [N] for the backward.
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int64_t N, int64_t C, float eps);
// With xhat = (x - mean) * rstd and g = dout * weight:
//   dinp (+)= rstd * (g - mean(g) - xhat * mean(g * xhat))  (accumulates when accumulate_dinp)
//   dweight += Σ_rows dout * xhat,  dbias += Σ_rows dout     (always accumulate: gradient accumulation)
// Row partials are kept per thread and added to dweight/dbias in thread order (deterministic for a
// given thread count).
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C,
                        bool accumulate_dinp);

// Plain scalar references (double internally, row sums in row order).
void layernorm_forward_ref(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                           const float* bias, int64_t N, int64_t C, float eps);
void layernorm_backward_ref(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                            const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C,
                            bool accumulate_dinp);

}  // namespace medgym
