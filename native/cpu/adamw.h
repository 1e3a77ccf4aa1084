// AdamW, exactly torch.optim.AdamW (amsgrad=False, maximize=False, foreach=False) in float32:
//   p  = p * (1 - lr*weight_decay)                     (decoupled weight decay, applied first)
//   m  = beta1*m + (1-beta1)*g
//   v  = beta2*v + (1-beta2)*g*g
//   p += (-(lr / (1 - beta1^t)) * m) / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// with step t >= 1 counted from 1 (the value torch's state['step'] has after its increment).
// Hyperparameters are doubles like torch's Python floats: the scalars (1 - lr*wd, 1 - beta, the step
// size, sqrt of the bias correction) are computed in double and rounded to float once per call, and
// the element-wise operations run in float32 in torch's order (mul_, add_(alpha), addcmul_, sqrt,
// div, add_(eps), addcdiv_).
#pragma once
#include <cstdint>

namespace medgym {

struct AdamWParams {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 1e-2;
  int64_t step = 1;
};

// In place over n elements of param, with gradient grad and moments m, v (all length n).
void adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWParams& hp);
// Plain scalar reference (double arithmetic, rounded to float when stored).
void adamw_step_ref(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWParams& hp);

}  // namespace medgym
