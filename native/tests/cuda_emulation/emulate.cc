// A CPU emulation of the CUDA API the GPU policy uses (cuda/kernels.h, cuda/rowops.h, cuda/device.h):
// "device" memory is host memory filled with 0xff bytes when allocated (NaN floats and bf16, -1
// integers: reading something never written shows), streams do nothing, and each kernel is its CPU
// twin (native/cpu) or the plain loop its contract states, on the same pointers and strides. With it,
// native/tests runs the GPU policy's host logic (native/model/gpu: uploads, views, strides, the KV
// pool, the step) against the CPU policy on a machine without a GPU. It says nothing about the CUDA
// kernels themselves: medgym_cuda_check tests those, on a GPU.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cpu/adamw.h"
#include "cpu/attention.h"
#include "cpu/attention_decode.h"
#include "cpu/fused_linear_logprob.h"
#include "cpu/gelu.h"
#include "cpu/gemm.h"
#include "cpu/grad_clip.h"
#include "cpu/layernorm.h"
#include "cuda/device.h"
#include "cuda/kernels.h"
#include "cuda/rowops.h"

namespace medgym::cuda {

// ---- runtime --------------------------------------------------------------------------------------

CudaError::CudaError(int code, const std::string& call, const std::string& message)
    : std::runtime_error(call + ": " + message + " (cudaError " + std::to_string(code) + ")"), code_(code), call_(call) {}

bool available(std::string*) { return true; }
void set_device(int) {}
int get_device() { return 0; }
void* device_alloc(size_t bytes) {
  if (bytes == 0) return nullptr;
  void* p = std::malloc(bytes);
  if (!p) throw CudaError(2, "cudaMalloc(" + std::to_string(bytes) + " bytes)", "out of memory");
  std::memset(p, 0xff, bytes);
  return p;
}
void device_free(void* p) noexcept { std::free(p); }
Stream stream_create() {
  static int token;
  return &token;
}
void stream_destroy(Stream) noexcept {}
void stream_synchronize(Stream) {}
void device_synchronize() {}
void copy_to_device(void* dst, const void* src, size_t bytes, Stream) {
  if (bytes) std::memcpy(dst, src, bytes);
}
void copy_to_host(void* dst, const void* src, size_t bytes, Stream) {
  if (bytes) std::memcpy(dst, src, bytes);
}
void copy_device(void* dst, const void* src, size_t bytes, Stream) {
  if (bytes) std::memmove(dst, src, bytes);
}
void memset_zero(void* dst, size_t bytes, Stream) {
  if (bytes) std::memset(dst, 0, bytes);
}
void copy_device_2d(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height, Stream) {
  for (size_t r = 0; r < height; ++r)
    std::memcpy(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch, width);
}
void memory_info(size_t* free_bytes, size_t* total_bytes) {
  *free_bytes = size_t(16) << 30;
  *total_bytes = size_t(16) << 30;
}
void keep_pool_memory() {}

std::vector<DeviceInfo> list_devices(std::string*) {
  DeviceInfo d;
  d.name = "CPU emulation of CUDA";
  d.major = 8, d.minor = 0, d.total_memory = size_t(16) << 30, d.multiprocessors = 1;
  return {d};
}
int runtime_version() { return 0; }

// ---- bf16 -----------------------------------------------------------------------------------------

Bf16 bf16_from_float(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return Bf16{static_cast<uint16_t>((u >> 16) | 0x40u)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return Bf16{static_cast<uint16_t>(u >> 16)};
}
float float_from_bf16(Bf16 x) {
  const uint32_t u = static_cast<uint32_t>(x.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
void convert_f32_to_bf16(Bf16* out, const float* in, int64_t n, Stream) {
  for (int64_t i = 0; i < n; ++i) out[i] = bf16_from_float(in[i]);
}
void convert_bf16_to_f32(float* out, const Bf16* in, int64_t n, Stream) {
  for (int64_t i = 0; i < n; ++i) out[i] = float_from_bf16(in[i]);
}

namespace {

std::vector<float> widen(const Bf16* p, int64_t n) {
  std::vector<float> v(n > 0 ? n : 0);
  for (int64_t i = 0; i < n; ++i) v[i] = float_from_bf16(p[i]);
  return v;
}
// The elements a row-major view of `rows` x `cols` with leading dimension ld spans.
int64_t span(int64_t rows, int64_t cols, int64_t ld) { return rows > 0 && cols > 0 ? (rows - 1) * ld + cols : 0; }

}  // namespace

// ---- GEMM, layers, attention ----------------------------------------------------------------------

void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
           int64_t ldb, float beta, float* C, int64_t ldc, Stream) {
  medgym::sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
void gemm_bf16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const Bf16* A, int64_t lda, const Bf16* B,
               int64_t ldb, float beta, float* C, int64_t ldc, Stream) {
  const std::vector<float> a = widen(A, ta ? span(K, M, lda) : span(M, K, lda));
  const std::vector<float> b = widen(B, tb ? span(N, K, ldb) : span(K, N, ldb));
  medgym::sgemm(ta, tb, M, N, K, alpha, a.data(), lda, b.data(), ldb, beta, C, ldc);
}
void gemm_bf16_out(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const Bf16* A, int64_t lda,
                   const Bf16* B, int64_t ldb, float beta, Bf16* C, int64_t ldc, Stream s) {
  std::vector<float> c = widen(C, span(M, N, ldc));
  gemm_bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, c.data(), ldc, s);
  for (int64_t r = 0; r < M; ++r)
    for (int64_t j = 0; j < N; ++j) C[r * ldc + j] = bf16_from_float(c[r * ldc + j]);
}

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias,
                       int64_t N, int64_t C, float eps, Stream) {
  medgym::layernorm_forward(out, mean, rstd, inp, weight, bias, N, C, eps);
}
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C,
                        bool accumulate_dinp, Stream) {
  medgym::layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C, accumulate_dinp);
}

void gelu_forward(float* out, const float* inp, int64_t n, Stream) { medgym::gelu_forward(out, inp, n); }
void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n, bool accumulate, Stream) {
  medgym::gelu_backward(dinp, inp, dout, n, accumulate);
}
void gelu_forward_bf16(Bf16* out, const Bf16* inp, int64_t n, Stream) {
  const std::vector<float> x = widen(inp, n);
  std::vector<float> y(n);
  medgym::gelu_forward(y.data(), x.data(), n);
  for (int64_t i = 0; i < n; ++i) out[i] = bf16_from_float(y[i]);
}
void gelu_backward_bf16(Bf16* dinp, const Bf16* inp, const Bf16* dout, int64_t n, bool accumulate, Stream) {
  const std::vector<float> x = widen(inp, n), g = widen(dout, n);
  std::vector<float> d(n);
  medgym::gelu_backward(d.data(), x.data(), g.data(), n, false);
  for (int64_t i = 0; i < n; ++i) dinp[i] = bf16_from_float(accumulate ? float_from_bf16(dinp[i]) + d[i] : d[i]);
}

void attention_forward(const AttnDims& dims, AttnViewOut out, float* lse, AttnView q, AttnView k, AttnView v,
                       const int32_t* key_mask, float scale, Stream) {
  if (dims.hd > 256) throw std::invalid_argument("attention_forward kernel: head dim > 256 is not supported");
  medgym::attention_forward(dims, out, lse, q, k, v, key_mask, scale);
}
void attention_backward(const AttnDims& dims, AttnViewOut dq, AttnViewOut dk, AttnViewOut dv, AttnView dout,
                        AttnView out, const float* lse, AttnView q, AttnView k, AttnView v, const int32_t* key_mask,
                        float scale, bool accumulate, Stream) {
  medgym::attention_backward(dims, dq, dk, dv, dout, out, lse, q, k, v, key_mask, scale, accumulate);
}
void attention_decode(const AttnDims& dims, AttnViewOut out, float* lse, AttnView q, AttnView k, AttnView v,
                      const int32_t* kv_len, float scale, Stream s) {
  attention_decode(dims, out, lse, q, k, v, kv_len, nullptr, scale, s);
}
void attention_decode(const AttnDims& dims, AttnViewOut out, float* lse, AttnView q, AttnView k, AttnView v,
                      const int32_t* kv_len, const int32_t* kv_slot, float scale, Stream) {
  for (int64_t b = 0; b < dims.B; ++b) {
    const int64_t len = kv_len ? kv_len[b] : dims.Tk, kb = kv_slot ? kv_slot[b] : b;
    if (!(dims.Tq > 0 && dims.Tq <= len && len <= dims.Tk)) throw std::invalid_argument("attention_decode: bad kv_len");
    std::vector<float> scores(dims.H * len);
    medgym::attention_decode(dims.H, dims.Tq, len, dims.hd, AttnViewOut{out.data + b * out.sb, 0, out.st, out.sh},
                             lse ? lse + b * dims.H * dims.Tq : nullptr, AttnView{q.data + b * q.sb, 0, q.st, q.sh},
                             AttnView{k.data + kb * k.sb, 0, k.st, k.sh}, AttnView{v.data + kb * v.sb, 0, v.st, v.sh},
                             scale, scores.data());
  }
}

void fused_linear_logprob_forward(const float* h, const float* W, const int32_t* targets, int64_t N, int64_t d,
                                  int64_t V, float temperature, float* logp, float* entropy, float* lse, Stream) {
  medgym::fused_linear_logprob_forward(h, W, targets, N, d, V, temperature, logp, entropy, lse);
}
void fused_linear_logprob_backward(const float* h, const float* W, const int32_t* targets, const float* lse,
                                   const float* entropy, const float* dlogp, const float* dentropy, int64_t N,
                                   int64_t d, int64_t V, float temperature, float* dh, float* dW, bool accumulate_dh,
                                   Stream) {
  medgym::fused_linear_logprob_backward(h, W, targets, lse, entropy, dlogp, dentropy, N, d, V, temperature, dh, dW,
                                        accumulate_dh);
}
void fused_linear_logprob_forward_bf16(const Bf16* h, const Bf16* W, const int32_t* targets, int64_t N, int64_t d,
                                       int64_t V, float temperature, float* logp, float* entropy, float* lse,
                                       Stream s) {
  const std::vector<float> hf = widen(h, N * d), wf = widen(W, V * d);
  fused_linear_logprob_forward(hf.data(), wf.data(), targets, N, d, V, temperature, logp, entropy, lse, s);
}
void fused_linear_logprob_backward_bf16(const Bf16* h, const Bf16* W, const int32_t* targets, const float* lse,
                                        const float* entropy, const float* dlogp, const float* dentropy, int64_t N,
                                        int64_t d, int64_t V, float temperature, float* dh, float* dW,
                                        bool accumulate_dh, Stream s) {
  const std::vector<float> hf = widen(h, N * d), wf = widen(W, V * d);
  fused_linear_logprob_backward(hf.data(), wf.data(), targets, lse, entropy, dlogp, dentropy, N, d, V, temperature, dh,
                                dW, accumulate_dh, s);
}

// ---- optimizer ------------------------------------------------------------------------------------

void adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWParams& hp, Stream) {
  medgym::adamw_step(param, grad, m, v, n, hp);
}
void grad_sum_squares(const float* const* arrays, const int64_t* lengths, int64_t count, double* sum_sq, Stream) {
  *sum_sq = medgym::grad_sum_squares(arrays, lengths, count);
}
void grad_clip(float* const* arrays, const int64_t* lengths, int64_t count, double max_norm, GradClipResult* result,
               Stream) {
  *result = medgym::grad_clip(arrays, lengths, count, max_norm);
}

// ---- rowops.h: the loops of its contracts ---------------------------------------------------------

void rows_bias(float* out, const float* x, const float* bias, int64_t N, int64_t n, Stream) {
  for (int64_t r = 0; r < N; ++r)
    for (int64_t i = 0; i < n; ++i) out[r * n + i] = x ? x[r * n + i] + bias[i] : bias[i];
}
void gather_rows_sum(float* out, const float* base, const int64_t* offsets, int k, int64_t N, int64_t d, Stream) {
  for (int64_t r = 0; r < N; ++r)
    for (int64_t i = 0; i < d; ++i) {
      float acc = 0.0f;
      bool first = true;
      for (int j = 0; j < k; ++j) {
        const int64_t o = offsets[r * k + j];
        if (o < 0) continue;
        acc = first ? base[o + i] : acc + base[o + i];
        first = false;
      }
      out[r * d + i] = acc;
    }
}
void add_rows_indexed(float* out, const int64_t* rows, const float* src, int64_t n, int64_t d, Stream) {
  for (int64_t k = 0; k < n; ++k)
    for (int64_t i = 0; i < d; ++i) out[rows[k] * d + i] += src[k * d + i];
}
void gather_rows(float* out, const float* src, const int64_t* rows, int64_t n, int64_t d, Stream) {
  for (int64_t k = 0; k < n; ++k)
    for (int64_t i = 0; i < d; ++i) out[k * d + i] = src[rows[k] * d + i];
}
void segment_rows_add(float* base, const int64_t* dst, const int64_t* start, const int64_t* src_rows, const float* src,
                      int64_t d, int64_t nseg, Stream) {
  for (int64_t g = 0; g < nseg; ++g)
    for (int64_t k = start[g]; k < start[g + 1]; ++k)
      for (int64_t i = 0; i < d; ++i) base[dst[g] + i] += src[src_rows[k] * d + i];
}
void column_sum_add(float* out, const float* x, int64_t N, int64_t n, Stream) {
  for (int64_t r = 0; r < N; ++r)
    for (int64_t i = 0; i < n; ++i) out[i] += x[r * n + i];
}
void column_sum_add_bf16(float* out, const Bf16* x, int64_t N, int64_t n, Stream) {
  for (int64_t r = 0; r < N; ++r)
    for (int64_t i = 0; i < n; ++i) out[i] += float_from_bf16(x[r * n + i]);
}
void kv_cache_write(float* k_cache, float* v_cache, int64_t slot_stride, int64_t head_stride, const float* src,
                    int64_t ld, int64_t k_col, int64_t v_col, const int32_t* slot, const int32_t* pos, int64_t n_rows,
                    int64_t H, int64_t hd, Stream) {
  for (int64_t r = 0; r < n_rows; ++r)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t e = 0; e < hd; ++e) {
        const int64_t at = int64_t(slot[r]) * slot_stride + h * head_stride + int64_t(pos[r]) * hd + e;
        k_cache[at] = src[r * ld + k_col + h * hd + e];
        v_cache[at] = src[r * ld + v_col + h * hd + e];
      }
}

}  // namespace medgym::cuda
