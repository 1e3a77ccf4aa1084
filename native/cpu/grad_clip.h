// Global gradient-norm clipping, torch.nn.utils.clip_grad_norm_(norm_type=2) semantics:
//   norm = sqrt(Σ_arrays Σ_i g_i²)                      (accumulated in double)
//   coef = max_norm / (norm + 1e-6); if coef < 1: every g *= coef   (torch clamps coef to 1)
// A non-finite norm (NaN/Inf in a gradient) is returned as is and nothing is scaled, so the trainer
// can skip the step (torch would multiply the gradients by NaN).
#pragma once
#include <cstdint>

namespace medgym {

// Sum of squares over every array, in double. Deterministic for any thread count: each array is cut
// into fixed blocks of 4096 elements whose double partials are added in array/block order.
double grad_sum_squares(const float* const* arrays, const int64_t* lengths, int64_t count);

struct GradClipResult {
  double norm;   // L2 norm before clipping (NaN/Inf when a gradient is not finite)
  double scale;  // factor applied (1 when not clipped)
  bool clipped;  // true when the gradients were scaled
  bool finite;   // false when the norm is not finite (nothing scaled)
};
// max_norm > 0. Scales the arrays in place when the norm exceeds max_norm (see above).
GradClipResult grad_clip(float* const* arrays, const int64_t* lengths, int64_t count, double max_norm);

// Plain reference: element by element in double, same clipping rule.
GradClipResult grad_clip_ref(float* const* arrays, const int64_t* lengths, int64_t count, double max_norm);

}  // namespace medgym
