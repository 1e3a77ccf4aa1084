// Row softmax twins of cpu/softmax.h: p = softmax(scale * x); a fully -inf row gives zeros.
#include <type_traits>

#include "cuda/rows.cuh"

namespace medgym::cuda {

namespace {

template <int TPR>
__global__ void __launch_bounds__(kRowBlock) softmax_forward_kernel(float* out, const float* inp, int64_t N, int64_t C,
                                                                    float scale) {
  using R = Row<TPR>;
  __shared__ float sh[32];
  const int64_t r = R::index();
  if (r >= N) return;
  const int lane = R::lane();
  const float* x = inp + r * C;
  float* o = out + r * C;
  float m = -INFINITY;
  for (int64_t i = lane; i < C; i += TPR) m = fmaxf(m, scale * x[i]);
  m = R::max(m, sh);
  if (m == -INFINITY) {  // fully masked row
    for (int64_t i = lane; i < C; i += TPR) o[i] = 0.0f;
    return;
  }
  float s = 0.0f;
  for (int64_t i = lane; i < C; i += TPR) s += expf(scale * x[i] - m);
  const float inv = 1.0f / R::sum(s, sh);
  for (int64_t i = lane; i < C; i += TPR) o[i] = expf(scale * x[i] - m) * inv;
}

template <int TPR>
__global__ void __launch_bounds__(kRowBlock) softmax_backward_kernel(float* dinp, const float* out, const float* dout,
                                                                     int64_t N, int64_t C, float scale, bool acc) {
  using R = Row<TPR>;
  __shared__ float sh[32];
  const int64_t r = R::index();
  if (r >= N) return;
  const int lane = R::lane();
  const float* p = out + r * C;
  const float* dy = dout + r * C;
  float* dx = dinp + r * C;
  float s = 0.0f;
  for (int64_t i = lane; i < C; i += TPR) s += dy[i] * p[i];
  s = R::sum(s, sh);
  for (int64_t i = lane; i < C; i += TPR) {
    const float g = scale * p[i] * (dy[i] - s);
    dx[i] = acc ? dx[i] + g : g;
  }
}

}  // namespace

void softmax_forward(float* out, const float* inp, int64_t N, int64_t C, float scale, Stream s) {
  if (N <= 0 || C <= 0) return;
  with_tpr(C, [&](auto tpr) {
    softmax_forward_kernel<decltype(tpr)::value>
        <<<row_blocks(N, tpr), kRowBlock, 0, to_stream(s)>>>(out, inp, N, C, scale);
  });
  check_launch("softmax_forward kernel");
}

void softmax_backward(float* dinp, const float* out, const float* dout, int64_t N, int64_t C, float scale,
                      bool accumulate, Stream s) {
  if (N <= 0 || C <= 0) return;
  with_tpr(C, [&](auto tpr) {
    softmax_backward_kernel<decltype(tpr)::value>
        <<<row_blocks(N, tpr), kRowBlock, 0, to_stream(s)>>>(dinp, out, dout, N, C, scale, accumulate);
  });
  check_launch("softmax_backward kernel");
}

}  // namespace medgym::cuda
