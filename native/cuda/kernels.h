// CUDA twins of the native/cpu kernels: the same math and contracts as the CPU header named beside
// each function, on DEVICE pointers, enqueued on a stream. Plain C++ (no CUDA types): a stream is a
// `Stream` (a cudaStream_t cast to void*; nullptr = the legacy default stream), bf16 storage is
// `Bf16`, so .cc files (native/model) can include this header and link medgym_cuda.
//
// Conventions for every kernel below:
//  - Asynchronous: the call only enqueues work on `stream` and returns. Launch errors are thrown as
//    CudaError naming the kernel; errors of the running kernel surface at the next synchronizing
//    call (stream_synchronize, a blocking copy).
//  - Argument validity is the caller's job (native/addon validates): sizes >= 0, pointers of the
//    documented lengths. Zero-sized calls are no-ops (outputs of length 0 untouched).
//  - Scratch memory, where a kernel needs any, comes from the device's stream-ordered pool
//    (cudaMallocAsync on `stream`) and is released on the same stream before the call returns.
//  - Reductions are deterministic: fixed-order block trees, fixed grid partitions, no floating-point
//    atomics. The same call on the same device gives the same bits every time; results differ from
//    the CPU twin in the last bits (other summation order) within the bounds in docs/cuda.md.
//  - Structs of results (CrossEntropyResult, GrpoLossResult, GradClipResult, ...) are written to
//    DEVICE memory; copy them back (copy_to_host) when the host needs them, which synchronizes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "cpu/adamw.h"          // AdamWParams
#include "cpu/attention.h"      // AttnDims, AttnView, AttnViewOut (plain structs; here: device pointers)
#include "cpu/cross_entropy.h"  // CeReduction, CrossEntropyResult
#include "cpu/grad_clip.h"      // GradClipResult
#include "cpu/grpo.h"           // GrpoOptions, GrpoScale, GrpoMetrics, GrpoAdvantageStats

namespace medgym::cuda {

// ---------------------------------------------------------------------------------------------
// Runtime helpers
// ---------------------------------------------------------------------------------------------

using Stream = void*;  // a cudaStream_t; nullptr = the default stream

// A failed CUDA runtime call or kernel launch. what() = "<call>: <runtime message> (cudaError N)".
class CudaError : public std::runtime_error {
 public:
  CudaError(int code, const std::string& call, const std::string& message);
  int code() const { return code_; }                 // the cudaError_t value
  const std::string& call() const { return call_; }  // e.g. "cudaMalloc(4096 bytes)", "sgemm kernel"

 private:
  int code_;
  std::string call_;
};

// True when the runtime sees at least one device. Never throws; *why gets the runtime's reason.
bool available(std::string* why = nullptr);
void set_device(int device);
int get_device();

void* device_alloc(size_t bytes);       // cudaMalloc; 0 bytes gives nullptr
void device_free(void* p) noexcept;     // cudaFree; errors are ignored (used by destructors)
Stream stream_create();                 // a non-blocking stream
void stream_destroy(Stream s) noexcept;
void stream_synchronize(Stream s);
void device_synchronize();

// Copies enqueued on `stream`. With pageable host memory the runtime makes copy_to_host synchronous
// and copy_to_device returns once the source has been staged, so the host buffer may be reused.
void copy_to_device(void* dst_device, const void* src_host, size_t bytes, Stream s);
void copy_to_host(void* dst_host, const void* src_device, size_t bytes, Stream s);  // then synchronizes s
void copy_device(void* dst_device, const void* src_device, size_t bytes, Stream s);
void memset_zero(void* dst_device, size_t bytes, Stream s);
// `height` rows of `width` bytes from src (rows `spitch` bytes apart) to dst (rows `dpitch` apart).
void copy_device_2d(void* dst_device, size_t dpitch, const void* src_device, size_t spitch, size_t width, size_t height,
                    Stream s);
// Free and total memory of the current device, in bytes.
void memory_info(size_t* free_bytes, size_t* total_bytes);
// Keeps freed stream-ordered scratch (the kernels' cudaMallocAsync) in the current device's pool instead of
// returning it to the driver at every synchronization, so repeated calls reuse it (a process-wide setting).
void keep_pool_memory();

// Owning device buffer of n elements of T (no construction: raw storage).
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n) : p_(static_cast<T*>(device_alloc(n * sizeof(T)))), n_(n) {}
  ~DeviceBuffer() { device_free(p_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) device_free(p_), p_ = o.p_, n_ = o.n_, o.p_ = nullptr, o.n_ = 0;
    return *this;
  }
  T* get() const { return p_; }
  size_t size() const { return n_; }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

// ---------------------------------------------------------------------------------------------
// bf16 storage: the bit pattern of a bfloat16 (the device code reads it as __nv_bfloat16).
// Arithmetic is always fp32 (bf16 is a storage format only).
// ---------------------------------------------------------------------------------------------

struct Bf16 {
  uint16_t bits;
};

// Host conversions: round to nearest even, NaN kept NaN (quiet).
Bf16 bf16_from_float(float x);
float float_from_bf16(Bf16 x);
// Device conversions of n elements.
void convert_f32_to_bf16(Bf16* out, const float* in, int64_t n, Stream s);
void convert_bf16_to_f32(float* out, const Bf16* in, int64_t n, Stream s);

// ---------------------------------------------------------------------------------------------
// GEMM (cpu/gemm.h): C[M,N] = alpha * op(A) @ op(B) + beta * C, row-major, op(A) [M,K] (A stored
// [K,M] when trans_a), op(B) [K,N] (B stored [N,K] when trans_b); beta == 0 overwrites C.
// ---------------------------------------------------------------------------------------------

// Built with cuBLAS (CMake found CUDA::cublas; option MEDGYM_CUBLAS), the three GEMMs run on it
// (fp32 without TF32; bf16 accumulating in fp32); MEDGYM_CUBLAS=0 in the environment, or no cuBLAS
// in the build, runs the built-in kernels described below. gemm_backend() names the one in use.
const char* gemm_backend();

// fp32 in, fp32 accumulate (SIMT FMA, no TF32), fp32 out.
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc, Stream s);
// bf16 in, fp32 accumulate on tensor cores (mma via WMMA), fp32 out. Any shapes and strides; rows
// whose stride is a multiple of 8 elements on 16-byte-aligned pointers take the vectorized loads.
void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const Bf16* A,
               int64_t lda, const Bf16* B, int64_t ldb, float beta, float* C, int64_t ldc, Stream s);
// The same with a bf16 C (beta reads the old C in bf16; the result is rounded to bf16 once).
void gemm_bf16_out(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const Bf16* A,
                   int64_t lda, const Bf16* B, int64_t ldb, float beta, Bf16* C, int64_t ldc, Stream s);

// ---------------------------------------------------------------------------------------------
// LayerNorm (cpu/layernorm.h). mean/rstd [N] fp32; weight/bias/dweight/dbias [C] fp32.
// dweight/dbias always accumulate (+=); per-block partials summed in a fixed order.
// ---------------------------------------------------------------------------------------------

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int64_t N, int64_t C, float eps, Stream s);
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C,
                        bool accumulate_dinp, Stream s);
// bf16 activations (inp, out, dout, dinp); statistics, parameters and their gradients in fp32.
void layernorm_forward_bf16(Bf16* out, float* mean, float* rstd, const Bf16* inp, const float* weight,
                            const float* bias, int64_t N, int64_t C, float eps, Stream s);
void layernorm_backward_bf16(Bf16* dinp, float* dweight, float* dbias, const Bf16* dout, const Bf16* inp,
                             const float* weight, const float* mean, const float* rstd, int64_t N, int64_t C,
                             bool accumulate_dinp, Stream s);

// ---------------------------------------------------------------------------------------------
// GELU, tanh approximation (cpu/gelu.h).
// ---------------------------------------------------------------------------------------------

void gelu_forward(float* out, const float* inp, int64_t n, Stream s);
void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n, bool accumulate, Stream s);
void gelu_forward_bf16(Bf16* out, const Bf16* inp, int64_t n, Stream s);
void gelu_backward_bf16(Bf16* dinp, const Bf16* inp, const Bf16* dout, int64_t n, bool accumulate, Stream s);

// ---------------------------------------------------------------------------------------------
// Row softmax (cpu/softmax.h).
// ---------------------------------------------------------------------------------------------

void softmax_forward(float* out, const float* inp, int64_t N, int64_t C, float scale, Stream s);
void softmax_backward(float* dinp, const float* out, const float* dout, int64_t N, int64_t C, float scale,
                      bool accumulate, Stream s);

// ---------------------------------------------------------------------------------------------
// Causal attention, flash style (cpu/attention.h): same strided views, masking and lse contract.
// fp32 SIMT kernels; the head dim is padded to 32, 64, 128 or 256 in shared memory (hd > 256 throws
// std::invalid_argument); B and H <= 65535. The backward needs scratch of B*H*Tq floats.
// ---------------------------------------------------------------------------------------------

void attention_forward(const AttnDims& dims, AttnViewOut out, float* lse, AttnView q, AttnView k, AttnView v,
                       const int32_t* key_mask, float scale, Stream s);
void attention_backward(const AttnDims& dims, AttnViewOut dq, AttnViewOut dk, AttnViewOut dv, AttnView dout,
                        AttnView out, const float* lse, AttnView q, AttnView k, AttnView v,
                        const int32_t* key_mask, float scale, bool accumulate, Stream s);
void attention_forward_qkv(float* out, float* lse, const float* qkv, const int32_t* key_mask, int64_t B, int64_t T,
                           int64_t C, int64_t H, Stream s);
void attention_backward_qkv(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                            const int32_t* key_mask, int64_t B, int64_t T, int64_t C, int64_t H, bool accumulate,
                            Stream s);

// Decode over a KV cache (cpu/attention_decode.h), batched: dims.B sequences, dims.Tq new queries
// each. Sequence b has kv_len[b] valid keys (kv_len null: dims.Tk for all; 0 < Tq <= kv_len[b] <= Tk)
// and its query i sits at position kv_len[b] - Tq + i, attending keys 0..kv_len[b] - Tq + i.
// lse [B, H, Tq] nullable. With B = 1 and kv_len null this is attention_decode of the CPU.
// Split over the keys in chunks of 256 (flash-decoding); the chunks' partials are combined in chunk
// order. Any head dim.
void attention_decode(const AttnDims& dims, AttnViewOut out, float* lse, AttnView q, AttnView k, AttnView v,
                      const int32_t* kv_len, float scale, Stream s);
// The same over a pool of caches: sequence b reads the K/V rows of slot kv_slot[b] (device, [B]; null: slot
// b), i.e. k.data + kv_slot[b] * k.sb, so a batch can be any subset of the pool's sequences.
void attention_decode(const AttnDims& dims, AttnViewOut out, float* lse, AttnView q, AttnView k, AttnView v,
                      const int32_t* kv_len, const int32_t* kv_slot, float scale, Stream s);

// ---------------------------------------------------------------------------------------------
// Log-probabilities and entropies from logits (cpu/logprob.h).
// ---------------------------------------------------------------------------------------------

void logprob_forward(const float* logits, const int32_t* targets, int64_t N, int64_t V, float temperature,
                     float* logp, float* entropy /*nullable*/, float* lse /*nullable*/, Stream s);
void logprob_backward(const float* logits, const int32_t* targets, const float* lse /*nullable*/,
                      const float* dlogp /*nullable*/, const float* dentropy /*nullable*/, int64_t N, int64_t V,
                      float temperature, float* dlogits, bool accumulate, Stream s);
void log_softmax_forward(const float* logits, int64_t N, int64_t V, float temperature, float* out, Stream s);

// ---------------------------------------------------------------------------------------------
// Fused linear + log-softmax + gather (+ entropy) (cpu/fused_linear_logprob.h): logits = h @ W^T / tau,
// never materialized N x V.
//  - forward: blocks of 128 rows x a range of the vocabulary, each keeping an online logsumexp
//    (max, Σe^(z-m), Σe^(z-m)(z-m)) over its 128-column logit tiles; the per-range partials are
//    combined in range order.
//  - backward: per macro-block of Rc rows (Rc x V dlogits scratch, <= kCudaFusedLogprobScratchBytes),
//    recompute the logits tile, turn it into dlogits, then dW += dlogits^T h and dh = dlogits W as two
//    GEMMs (no atomics: deterministic).
// Same contracts as the CPU: logp required, entropy / lse nullable; dlogp / dentropy null = zero;
// entropy is recomputed when dentropy is given and entropy is null; dh overwritten (ignored rows 0)
// or incremented with accumulate_dh; dW always incremented.
// ---------------------------------------------------------------------------------------------

constexpr int64_t kCudaFusedLogprobScratchBytes = int64_t(256) << 20;

void fused_linear_logprob_forward(const float* h, const float* W, const int32_t* targets, int64_t N, int64_t d,
                                  int64_t V, float temperature, float* logp, float* entropy, float* lse, Stream s);
void fused_linear_logprob_backward(const float* h, const float* W, const int32_t* targets, const float* lse,
                                   const float* entropy, const float* dlogp, const float* dentropy, int64_t N,
                                   int64_t d, int64_t V, float temperature, float* dh, float* dW, bool accumulate_dh,
                                   Stream s);
// forward_backward: the forward then the backward (4 GEMM sweeps); lse / entropy scratch when null.
void fused_linear_logprob_forward_backward(const float* h, const float* W, const int32_t* targets, int64_t N,
                                           int64_t d, int64_t V, float temperature, const float* dlogp,
                                           const float* dentropy, float* logp, float* entropy, float* lse,
                                           float* dh, float* dW, bool accumulate_dh, Stream s);
// bf16 h and W on tensor cores (fp32 accumulation); statistics and gradients in fp32 (dlogits are
// rounded to bf16 for the two gradient GEMMs).
void fused_linear_logprob_forward_bf16(const Bf16* h, const Bf16* W, const int32_t* targets, int64_t N, int64_t d,
                                       int64_t V, float temperature, float* logp, float* entropy, float* lse,
                                       Stream s);
void fused_linear_logprob_backward_bf16(const Bf16* h, const Bf16* W, const int32_t* targets, const float* lse,
                                        const float* entropy, const float* dlogp, const float* dentropy, int64_t N,
                                        int64_t d, int64_t V, float temperature, float* dh, float* dW,
                                        bool accumulate_dh, Stream s);
void fused_linear_logprob_forward_backward_bf16(const Bf16* h, const Bf16* W, const int32_t* targets, int64_t N,
                                                int64_t d, int64_t V, float temperature, const float* dlogp,
                                                const float* dentropy, float* logp, float* entropy, float* lse,
                                                float* dh, float* dW, bool accumulate_dh, Stream s);

// ---------------------------------------------------------------------------------------------
// SFT cross-entropy (cpu/cross_entropy.h). `result` is a DEVICE pointer (loss in double, count).
// The backward counts the non-ignored rows itself (for "mean").
// ---------------------------------------------------------------------------------------------

void cross_entropy_forward(const float* logits, const int32_t* targets, int64_t N, int64_t V, float temperature,
                           CeReduction reduction, float* lse /*nullable*/, CrossEntropyResult* result, Stream s);
void cross_entropy_backward(const float* logits, const int32_t* targets, const float* lse /*nullable*/, int64_t N,
                            int64_t V, float temperature, CeReduction reduction, float dloss, float* dlogits,
                            bool accumulate, Stream s);

// ---------------------------------------------------------------------------------------------
// GRPO (cpu/grpo.h, SPEC §2). All arrays and result structs on the device.
// ---------------------------------------------------------------------------------------------

// adv [B]; stats (nullable, device) gets the group counts. Each member's group statistics are summed
// in index order in double, as on the CPU (bit-identical advantages).
void grpo_advantages(const float* rewards, const int32_t* groups, int64_t B, GrpoScale scale, float* adv,
                     GrpoAdvantageStats* stats /*nullable, device*/, Stream s);

struct GrpoLossResult {
  double loss;
  GrpoMetrics metrics;
};
// dlogp [B, T] written; result (device) gets the loss and the metrics. ref_logp may be null when
// opt.beta == 0 (metrics.kl NaN); entropy may be null (metrics.entropy NaN).
void grpo_loss(const float* logp, const float* old_logp, const float* ref_logp, const float* mask, const float* adv,
               const float* entropy, int64_t B, int64_t T, const GrpoOptions& opt, float* dlogp,
               GrpoLossResult* result, Stream s);

// ---------------------------------------------------------------------------------------------
// AdamW (cpu/adamw.h): torch's float32 operation order, no FMA contraction (bit-identical to the CPU).
// ---------------------------------------------------------------------------------------------

void adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWParams& hp, Stream s);

// ---------------------------------------------------------------------------------------------
// Gradient-norm clipping (cpu/grad_clip.h). `arrays` / `lengths` are HOST arrays of `count` device
// pointers and lengths. Fixed 4096-element blocks; their double partials, listed in array/block
// order, are summed by one block with a fixed tree (deterministic; the CPU sums them serially).
// ---------------------------------------------------------------------------------------------

// *sum_sq (device, one double) = Σ g².
void grad_sum_squares(const float* const* arrays, const int64_t* lengths, int64_t count, double* sum_sq, Stream s);
// Scales in place when the norm exceeds max_norm (the decision is taken on the device: no host sync).
void grad_clip(float* const* arrays, const int64_t* lengths, int64_t count, double max_norm,
               GradClipResult* result /*device*/, Stream s);

}  // namespace medgym::cuda
