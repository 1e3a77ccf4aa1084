// Row softmax with an optional scale: p = softmax(scale * x) over each row of [N, C].
#pragma once
#include <cstdint>

namespace medgym {

// out[r, :] = exp(scale*x - max) / Σ exp(scale*x - max). -inf entries get probability 0; a row whose
// entries are all -inf gives all zeros (a fully masked row) instead of NaN.
void softmax_forward(float* out, const float* inp, int64_t N, int64_t C, float scale);
// Gradient w.r.t. the input x from the saved output p = out:
//   dinp (+)= scale * p ⊙ (dout - Σ dout⊙p)   (accumulates into dinp when `accumulate`).
void softmax_backward(float* dinp, const float* out, const float* dout, int64_t N, int64_t C, float scale,
                      bool accumulate);

// Plain scalar references (double internally).
void softmax_forward_ref(float* out, const float* inp, int64_t N, int64_t C, float scale);
void softmax_backward_ref(float* dinp, const float* out, const float* dout, int64_t N, int64_t C, float scale,
                          bool accumulate);

}  // namespace medgym
