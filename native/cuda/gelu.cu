// GELU (tanh approximation) twins of cpu/gelu.h, fp32 and bf16 storage, as the CPU computes it:
//   gelu(x) = x * sigmoid(2u),  u = sqrt(2/pi) (x + 0.044715 x^3)   (= 0.5 x (1 + tanh u))
//   gelu'(x) = sg + x sg (1 - sg) 2 sqrt(2/pi) (1 + 3 * 0.044715 x^2),  sg = sigmoid(2u)
#include "cuda/elementwise.cuh"

namespace medgym::cuda {

namespace {

constexpr float kS = 0.7978845608028654f;
constexpr float kC = 0.044715f;

__device__ __forceinline__ float gelu_f(float x) { return x / (1.0f + expf(-2.0f * kS * (x + kC * x * x * x))); }
__device__ __forceinline__ float gelu_grad(float x) {
  const float sg = 1.0f / (1.0f + expf(-2.0f * kS * (x + kC * x * x * x)));
  return sg + x * sg * (1.0f - sg) * 2.0f * kS * (1.0f + 3.0f * kC * x * x);
}

template <typename T>
__global__ void gelu_forward_kernel(T* out, const T* inp, int64_t n, bool packed) {
  using P = Pack<T>;
  for_each_packed<P::N>(
      n, packed,
      [&](int64_t j) {
        P x = reinterpret_cast<const P*>(inp)[j], y;
#pragma unroll
        for (int e = 0; e < P::N; ++e) store_f(&y.v[e], gelu_f(load_f(&x.v[e])));
        reinterpret_cast<P*>(out)[j] = y;
      },
      [&](int64_t i) { store_f(out + i, gelu_f(load_f(inp + i))); });
}

template <typename T>
__global__ void gelu_backward_kernel(T* dinp, const T* inp, const T* dout, int64_t n, bool acc, bool packed) {
  using P = Pack<T>;
  for_each_packed<P::N>(
      n, packed,
      [&](int64_t j) {
        P x = reinterpret_cast<const P*>(inp)[j], g = reinterpret_cast<const P*>(dout)[j], d;
        if (acc) d = reinterpret_cast<const P*>(dinp)[j];
#pragma unroll
        for (int e = 0; e < P::N; ++e) {
          const float v = gelu_grad(load_f(&x.v[e])) * load_f(&g.v[e]);
          store_f(&d.v[e], acc ? load_f(&d.v[e]) + v : v);
        }
        reinterpret_cast<P*>(dinp)[j] = d;
      },
      [&](int64_t i) {
        const float v = gelu_grad(load_f(inp + i)) * load_f(dout + i);
        store_f(dinp + i, acc ? load_f(dinp + i) + v : v);
      });
}

template <typename T>
void forward(T* out, const T* inp, int64_t n, cudaStream_t s, const char* name) {
  if (n <= 0) return;
  const bool packed = aligned16(out) && aligned16(inp);
  gelu_forward_kernel<<<stream_grid(n / Pack<T>::N + 1, 256), 256, 0, s>>>(out, inp, n, packed);
  check_launch(name);
}
template <typename T>
void backward(T* dinp, const T* inp, const T* dout, int64_t n, bool acc, cudaStream_t s, const char* name) {
  if (n <= 0) return;
  const bool packed = aligned16(dinp) && aligned16(inp) && aligned16(dout);
  gelu_backward_kernel<<<stream_grid(n / Pack<T>::N + 1, 256), 256, 0, s>>>(dinp, inp, dout, n, acc, packed);
  check_launch(name);
}

}  // namespace

void gelu_forward(float* out, const float* inp, int64_t n, Stream s) {
  forward(out, inp, n, to_stream(s), "gelu_forward kernel");
}
void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n, bool accumulate, Stream s) {
  backward(dinp, inp, dout, n, accumulate, to_stream(s), "gelu_backward kernel");
}
void gelu_forward_bf16(Bf16* out, const Bf16* inp, int64_t n, Stream s) {
  forward(to_bf(out), to_bf(inp), n, to_stream(s), "gelu_forward_bf16 kernel");
}
void gelu_backward_bf16(Bf16* dinp, const Bf16* inp, const Bf16* dout, int64_t n, bool accumulate, Stream s) {
  backward(to_bf(dinp), to_bf(inp), to_bf(dout), n, accumulate, to_stream(s), "gelu_backward_bf16 kernel");
}

}  // namespace medgym::cuda
