// medgym_cuda_check: shared helpers of the CUDA-vs-CPU checks and the benchmark (host code; the
// kernels are reached through cuda/kernels.h, the CPU twins through cpu/*.h).
#pragma once
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "cuda/kernels.h"

namespace medgym::check {

using cuda::Bf16;
using cuda::DeviceBuffer;

// ---- data ---------------------------------------------------------------------------------------

struct Rng {
  std::mt19937_64 g;
  explicit Rng(uint64_t seed) : g(seed) {}
  std::vector<float> uniform(size_t n, float lo, float hi);
  std::vector<float> normal(size_t n, float sd);
  int64_t integer(int64_t lo, int64_t hi);  // inclusive
};

std::vector<Bf16> to_bf16(const std::vector<float>& x);
std::vector<float> from_bf16(const std::vector<Bf16>& x);
std::vector<float> round_bf16(const std::vector<float>& x);  // x rounded to bf16, as floats

template <typename T>
DeviceBuffer<T> upload(const std::vector<T>& h) {
  DeviceBuffer<T> d(h.size());
  cuda::copy_to_device(d.get(), h.data(), h.size() * sizeof(T), nullptr);
  return d;
}
template <typename T>
std::vector<T> download(const T* d, size_t n) {
  std::vector<T> h(n);
  cuda::copy_to_host(h.data(), d, n * sizeof(T), nullptr);
  return h;
}
template <typename T>
std::vector<T> download(const DeviceBuffer<T>& d) {
  return download(d.get(), d.size());
}

// ---- comparison ---------------------------------------------------------------------------------

// got vs want (the CPU twin). normwise = max|got - want| / max|want| (the infinity-norm relative
// error, the metric the bounds use unless stated); elem_rel = max |got - want| / max(|want|, floor)
// is reported for information. Non-finite values must match exactly (same infinity, or both NaN).
struct Diff {
  double max_abs = 0, max_ref = 0, normwise = 0, elem_rel = 0;
  int64_t worst = -1, nonfinite_mismatch = 0;
};
Diff compare(const std::vector<float>& got, const std::vector<float>& want, double floor = 1e-3);
Diff compare_scalar(double got, double want);  // one value, relative to max(|want|, 1e-30)
// A reference that is a difference of cancelling terms (softmax - onehot at V=1, lse - logit) can be
// exactly zero, where the relative error has no scale: measure normwise against max(max|want|, scale),
// scale being the size of the terms that cancel.
Diff relative_to(Diff d, double scale);

enum class Metric { Normwise, Elementwise, Absolute };  // Absolute: max |got - want|

struct Result {
  std::string kernel, shape, output, metric;
  double err, bound;
  bool pass;
};

class Checker {
 public:
  // Records one comparison; prints it when it fails. Returns pass.
  bool expect(const std::string& kernel, const std::string& shape, const std::string& output, const Diff& d,
              double bound, Metric m = Metric::Normwise);
  bool expect_true(const std::string& kernel, const std::string& shape, const std::string& what, bool ok);
  // A kernel threw (CudaError or other): recorded as a failure.
  void error(const std::string& kernel, const std::string& what);
  void print_summary() const;
  std::vector<Result> results;
  int failures = 0;
};

// ---- timing and device peaks --------------------------------------------------------------------

// Mean milliseconds per call of fn over `iters` calls after `warmup`, timed with CUDA events on the
// default stream.
double time_ms(const std::function<void()>& fn, int warmup, int iters);

struct Peaks {
  std::string name;
  int major = 0, minor = 0, sms = 0;
  double sm_clock_ghz = 0, mem_clock_ghz = 0;
  int bus_bits = 0;
  double hbm_gbs = 0;          // 2 (DDR) x memory clock x bus width / 8
  double fp32_tflops = 0;      // SMs x clock x FP32 FMA lanes x 2
  double bf16_tflops = 0;      // SMs x clock x dense bf16 tensor flops per clock per SM (0: unknown arch)
  int fp32_per_clk = 0, bf16_per_clk = 0;
};
Peaks device_peaks();

struct BenchResult {
  std::string name, shape;
  double ms = 0, flops = 0, bytes = 0;
  double tflops = 0, gbs = 0, frac = 0;  // frac: of the relevant peak (compute or bandwidth)
  std::string roof;                       // "bf16", "fp32" or "hbm"
  double tokens_per_s = 0;                // policy rows (native/model/gpu/check/bench_policy.cc)
};

// ---- the suites (check_*.cc, bench.cc) -----------------------------------------------------------

void check_gemm(Checker& c);
void check_layers(Checker& c);  // layernorm, gelu, softmax
void check_attention(Checker& c);
void check_logprob(Checker& c);  // logprob, log_softmax, cross-entropy, fused linear log-prob
void check_optim(Checker& c);    // grpo, adamw, grad clip
void check_rowops(Checker& c);   // cuda/rowops.h, KV-cache slots (native/model/gpu/check)
void check_policy(Checker& c);   // the GPU policy against the CPU policy (native/model/gpu/check)
std::vector<BenchResult> run_bench(const Peaks& p, const std::string& only);
std::vector<BenchResult> run_policy_bench(const Peaks& p, const std::string& only);  // `base` training, decode

std::string fmt(const char* f, ...);

}  // namespace medgym::check
