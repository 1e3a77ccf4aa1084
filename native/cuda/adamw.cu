// AdamW twin of cpu/adamw.h: torch's float32 operation order with every operation rounded on its own
// (_rn intrinsics: no FMA contraction), the scalars computed in double on the host exactly as the
// CPU does, so the result is bit-identical to the CPU's.
#include <cmath>

#include "cuda/common.cuh"

namespace medgym::cuda {

namespace {

struct Consts {
  float decay, b1, c1, b2, c2, neg_step_size, bc2_sqrt, eps;
};

__global__ void adamw_kernel(float* p, const float* g, float* m, float* v, int64_t n, Consts k) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float gi = g[i];
    const float pi = __fmul_rn(p[i], k.decay);                              // param.mul_(1 - lr*wd)
    const float mi = __fadd_rn(__fmul_rn(m[i], k.b1), __fmul_rn(k.c1, gi));  // exp_avg.mul_(b1).add_(g, 1-b1)
    const float vi = __fadd_rn(__fmul_rn(v[i], k.b2), __fmul_rn(__fmul_rn(k.c2, gi), gi));  // .addcmul_
    m[i] = mi;
    v[i] = vi;
    const float den = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), k.bc2_sqrt), k.eps);
    p[i] = __fadd_rn(pi, __fdiv_rn(__fmul_rn(k.neg_step_size, mi), den));  // addcdiv_(m, den, -step)
  }
}

}  // namespace

void adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWParams& hp, Stream s) {
  if (n <= 0) return;
  const double bc1 = 1.0 - std::pow(hp.beta1, double(hp.step));
  const double bc2 = 1.0 - std::pow(hp.beta2, double(hp.step));
  const Consts k{static_cast<float>(1.0 - hp.lr * hp.weight_decay), static_cast<float>(hp.beta1),
                 static_cast<float>(1.0 - hp.beta1), static_cast<float>(hp.beta2), static_cast<float>(1.0 - hp.beta2),
                 static_cast<float>(-(hp.lr / bc1)), static_cast<float>(std::sqrt(bc2)), static_cast<float>(hp.eps)};
  adamw_kernel<<<grid_for(n, 256, int64_t(sm_count()) * 8), 256, 0, to_stream(s)>>>(param, grad, m, v, n, k);
  check_launch("adamw_step kernel");
}

}  // namespace medgym::cuda
