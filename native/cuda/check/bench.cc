// Benchmarks with napkin math: each kernel's time (CUDA events, mean over iterations after warm-up),
// the work it must do (flops, or the bytes it must move at the least), and that as a fraction of the
// device's peak: tensor-core bf16 or fp32 for GEMM-like kernels, HBM bandwidth for memory-bound ones.
// The "logprob_grpo" and "fused_linear_logprob*_fwd_bwd" and "gemm_bf16" rows have PyTorch eager twins
// in bench/peers/cuda_torch.py under the same name and shape (scripts/gpu-check.sh prints the ratios).
#include <cmath>
#include <cstdio>

#include "cuda/check/check.h"

namespace medgym::check {

namespace {

constexpr size_t kPattern = size_t(1) << 20;

// Fills device arrays by repeating one random pattern (fast: device-to-device copies).
class Filler {
 public:
  Filler() {
    Rng rng(1234);
    pattern_ = upload(rng.normal(kPattern, 1.0f));
  }
  void fill(float* d, size_t n) const {
    for (size_t i = 0; i < n; i += kPattern)
      cuda::copy_device(d + i, pattern_.get(), std::min(kPattern, n - i) * sizeof(float), nullptr);
  }
  DeviceBuffer<float> make(size_t n) const {
    DeviceBuffer<float> b(n);
    fill(b.get(), n);
    return b;
  }
  DeviceBuffer<Bf16> make_bf16(size_t n) const {
    DeviceBuffer<float> f = make(n);
    DeviceBuffer<Bf16> b(n);
    cuda::convert_f32_to_bf16(b.get(), f.get(), static_cast<int64_t>(n), nullptr);
    return b;
  }

 private:
  DeviceBuffer<float> pattern_;
};

DeviceBuffer<int32_t> targets(int64_t N, int64_t V, int ignore_every) {
  std::vector<int32_t> t(N);
  Rng rng(99);
  for (int64_t i = 0; i < N; ++i) t[i] = (ignore_every && i % ignore_every == 0) ? -1 : int32_t(rng.integer(0, V - 1));
  return upload(t);
}

struct Bench {
  const Peaks& p;
  const std::string& only;
  std::vector<BenchResult> out;

  bool wanted(const std::string& name) const { return only.empty() || name.find(only) != std::string::npos; }

  void compute(const std::string& name, const std::string& shape, double flops, bool bf16, const std::function<void()>& fn,
               int iters = 10) {
    if (!wanted(name)) return;
    BenchResult r;
    r.name = name, r.shape = shape;
    r.ms = time_ms(fn, 2, iters);
    r.flops = flops;
    r.tflops = flops / (r.ms * 1e-3) * 1e-12;
    const double peak = bf16 ? p.bf16_tflops : p.fp32_tflops;
    r.frac = peak > 0 ? r.tflops / peak : 0;
    r.roof = bf16 ? "bf16" : "fp32";
    print(r);
    out.push_back(r);
  }
  void memory(const std::string& name, const std::string& shape, double bytes, const std::function<void()>& fn,
              int iters = 10) {
    if (!wanted(name)) return;
    BenchResult r;
    r.name = name, r.shape = shape;
    r.ms = time_ms(fn, 2, iters);
    r.bytes = bytes;
    r.gbs = bytes / (r.ms * 1e-3) * 1e-9;
    r.frac = p.hbm_gbs > 0 ? r.gbs / p.hbm_gbs : 0;
    r.roof = "hbm";
    print(r);
    out.push_back(r);
  }
  // Timed for the PyTorch comparison only (no roofline: many small kernels).
  void plain(const std::string& name, const std::string& shape, const std::function<void()>& fn, int iters = 10) {
    if (!wanted(name)) return;
    BenchResult r;
    r.name = name, r.shape = shape;
    r.ms = time_ms(fn, 2, iters);
    r.roof = "-";
    print(r);
    out.push_back(r);
  }
  static void print(const BenchResult& r) {
    if (r.roof == "hbm")
      std::printf("%-40s %-26s %9.3f ms %9.1f GB/s  %5.1f%% of HBM peak\n", r.name.c_str(), r.shape.c_str(), r.ms, r.gbs,
                  100 * r.frac);
    else if (r.roof == "-")
      std::printf("%-40s %-26s %9.3f ms\n", r.name.c_str(), r.shape.c_str(), r.ms);
    else
      std::printf("%-40s %-26s %9.3f ms %9.1f TFLOP/s %5.1f%% of %s peak\n", r.name.c_str(), r.shape.c_str(), r.ms,
                  r.tflops, 100 * r.frac, r.roof.c_str());
    std::fflush(stdout);
  }
};

void bench_gemm(Bench& b, const Filler& f) {
  for (int64_t n : {int64_t(4096), int64_t(8192)}) {
    auto A = f.make_bf16(n * n), B = f.make_bf16(n * n);
    DeviceBuffer<float> C(n * n);
    for (int t = 0; t < 4; ++t) {
      if (n == 8192 && t != 1) continue;
      const bool ta = t & 2, tb = t & 1;  // t = 1: NT (x @ W^T, torch Linear)
      const std::string shape = fmt("%lldx%lldx%lld %c%c", (long long)n, (long long)n, (long long)n, ta ? 'T' : 'N',
                                    tb ? 'T' : 'N');
      b.compute("gemm_bf16", shape, 2.0 * n * n * n, true, [&] {
        cuda::gemm_bf16(ta, tb, n, n, n, 1.0f, A.get(), n, B.get(), n, 0.0f, C.get(), n, nullptr);
      });
    }
  }
  {  // the policy's MLP shape: tokens x 4d x d
    const int64_t M = 16384, N = 3072, K = 768;
    auto A = f.make_bf16(M * K), W = f.make_bf16(N * K);
    DeviceBuffer<float> C(M * N);
    b.compute("gemm_bf16", "16384x3072x768 NT", 2.0 * M * N * K, true, [&] {
      cuda::gemm_bf16(false, true, M, N, K, 1.0f, A.get(), K, W.get(), K, 0.0f, C.get(), N, nullptr);
    });
  }
  {
    const int64_t n = 4096;
    auto A = f.make(n * n), B = f.make(n * n);
    DeviceBuffer<float> C(n * n);
    b.compute("sgemm", "4096x4096x4096 NT", 2.0 * n * n * n, false, [&] {
      cuda::sgemm(false, true, n, n, n, 1.0f, A.get(), n, B.get(), n, 0.0f, C.get(), n, nullptr);
    }, 3);
  }
}

void bench_memory(Bench& b, const Filler& f) {
  const int64_t n = int64_t(64) << 20;
  {
    auto x = f.make(n), y = f.make(n), g = f.make(n);
    b.memory("gelu_forward", "n=64M fp32", 8.0 * n, [&] { cuda::gelu_forward(y.get(), x.get(), n, nullptr); });
    b.memory("gelu_backward", "n=64M fp32", 12.0 * n,
             [&] { cuda::gelu_backward(y.get(), x.get(), g.get(), n, false, nullptr); });
    auto xb = f.make_bf16(n), yb = f.make_bf16(n);
    b.memory("gelu_forward_bf16", "n=64M bf16", 4.0 * n, [&] { cuda::gelu_forward_bf16(yb.get(), xb.get(), n, nullptr); });
  }
  {
    auto p = f.make(n), g = f.make(n), m = f.make(n), v = f.make(n);
    cuda::memset_zero(v.get(), n * sizeof(float), nullptr);  // v >= 0
    AdamWParams hp;
    b.memory("adamw_step", "n=64M", 28.0 * n, [&] { cuda::adamw_step(p.get(), g.get(), m.get(), v.get(), n, hp, nullptr); });
    float* arrays[1] = {g.get()};
    const int64_t lens[1] = {n};
    DeviceBuffer<GradClipResult> res(1);
    b.memory("grad_clip", "n=64M (clipping)", 12.0 * n,
             [&] { cuda::grad_clip(arrays, lens, 1, 1e-3, res.get(), nullptr); });
  }
  {
    const int64_t N = 32768, C = 1024;
    auto x = f.make(N * C), y = f.make(N * C), w = f.make(C), bias = f.make(C), dw = f.make(C), db = f.make(C);
    DeviceBuffer<float> mean(N), rstd(N);
    const std::string shape = "N=32768 C=1024";
    b.memory("layernorm_forward", shape + " fp32", 8.0 * N * C, [&] {
      cuda::layernorm_forward(y.get(), mean.get(), rstd.get(), x.get(), w.get(), bias.get(), N, C, 1e-5f, nullptr);
    });
    auto dy = f.make(N * C);
    b.memory("layernorm_backward", shape + " fp32", 12.0 * N * C, [&] {
      cuda::layernorm_backward(y.get(), dw.get(), db.get(), dy.get(), x.get(), w.get(), mean.get(), rstd.get(), N, C,
                               false, nullptr);
    });
    auto xb = f.make_bf16(N * C), yb = f.make_bf16(N * C);
    b.memory("layernorm_forward_bf16", shape + " bf16", 4.0 * N * C, [&] {
      cuda::layernorm_forward_bf16(yb.get(), mean.get(), rstd.get(), xb.get(), w.get(), bias.get(), N, C, 1e-5f,
                                   nullptr);
    });
    b.memory("softmax_forward", shape, 8.0 * N * C,
             [&] { cuda::softmax_forward(y.get(), x.get(), N, C, 1.0f, nullptr); });
  }
  {
    const int64_t N = 16384, V = 32768;
    auto logits = f.make(N * V), d = f.make(N * V), g = f.make(N);
    auto t = targets(N, V, 0);
    DeviceBuffer<float> logp(N), ent(N), lse(N);
    const std::string shape = "N=16384 V=32768";
    b.memory("logprob_forward", shape, 4.0 * N * V, [&] {
      cuda::logprob_forward(logits.get(), t.get(), N, V, 1.0f, logp.get(), ent.get(), lse.get(), nullptr);
    });
    b.memory("logprob_backward", shape + " (lse given)", 8.0 * N * V, [&] {
      cuda::logprob_backward(logits.get(), t.get(), lse.get(), g.get(), nullptr, N, V, 1.0f, d.get(), false, nullptr);
    });
    DeviceBuffer<CrossEntropyResult> res(1);
    b.memory("cross_entropy_forward", shape, 4.0 * N * V, [&] {
      cuda::cross_entropy_forward(logits.get(), t.get(), N, V, 1.0f, CeReduction::Mean, lse.get(), res.get(), nullptr);
    });
  }
  {  // decode: the K and V caches are read once
    const int64_t B = 32, H = 12, hd = 64, S = 2048;
    auto q = f.make(B * H * hd), k = f.make(B * H * S * hd), v = f.make(B * H * S * hd);
    DeviceBuffer<float> o(B * H * hd), lse(B * H);
    const AttnDims dims{B, H, 1, S, hd};
    b.memory("attention_decode", "B=32 H=12 hd=64 Tk=2048", 2.0 * 4 * B * H * S * hd, [&] {
      cuda::attention_decode(dims, {o.get(), H * hd, H * hd, hd}, lse.get(), {q.get(), H * hd, H * hd, hd},
                             {k.get(), H * S * hd, hd, S * hd}, {v.get(), H * S * hd, hd, S * hd}, nullptr,
                             0.125f, nullptr);
    });
  }
}

void bench_attention(Bench& b, const Filler& f) {
  const int64_t B = 8, T = 1024, C = 768, H = 12, hd = C / H;
  auto qkv = f.make(B * T * 3 * C), out = f.make(B * T * C), dout = f.make(B * T * C), dqkv = f.make(B * T * 3 * C);
  DeviceBuffer<float> lse(B * H * T);
  const double fwd = 4.0 * B * H * double(T) * T * hd / 2;  // two causal matmuls
  const std::string shape = "B=8 T=1024 C=768 H=12";
  b.compute("attention_forward", shape, fwd, false,
            [&] { cuda::attention_forward_qkv(out.get(), lse.get(), qkv.get(), nullptr, B, T, C, H, nullptr); });
  b.compute("attention_backward", shape, 2.5 * fwd, false, [&] {
    cuda::attention_backward_qkv(dqkv.get(), dout.get(), qkv.get(), out.get(), lse.get(), nullptr, B, T, C, H, false,
                                 nullptr);
  });
}

void bench_fused(Bench& b, const Filler& f) {
  struct Shape {
    int64_t N, d, V;
  } shapes[] = {{8192, 1024, 32768}, {16384, 256, 268}};
  for (const Shape& s : shapes) {
    const std::string shape = fmt("N=%lld d=%lld V=%lld", (long long)s.N, (long long)s.d, (long long)s.V);
    auto h = f.make_bf16(s.N * s.d), W = f.make_bf16(s.V * s.d);
    auto dlogp = f.make(s.N);
    auto t = targets(s.N, s.V, 4);
    DeviceBuffer<float> logp(s.N), ent(s.N), lse(s.N), dh(s.N * s.d), dW(s.V * s.d);
    const double nvd = 2.0 * s.N * s.V * s.d;
    b.compute("fused_linear_logprob_bf16_fwd", shape, nvd, true, [&] {
      cuda::fused_linear_logprob_forward_bf16(h.get(), W.get(), t.get(), s.N, s.d, s.V, 1.0f, logp.get(), ent.get(),
                                              lse.get(), nullptr);
    });
    b.compute("fused_linear_logprob_bf16_bwd", shape, 3 * nvd, true, [&] {
      cuda::fused_linear_logprob_backward_bf16(h.get(), W.get(), t.get(), lse.get(), nullptr, dlogp.get(), nullptr, s.N,
                                               s.d, s.V, 1.0f, dh.get(), dW.get(), false, nullptr);
    });
    b.compute("fused_linear_logprob_bf16_fwd_bwd", shape, 4 * nvd, true, [&] {
      cuda::fused_linear_logprob_forward_backward_bf16(h.get(), W.get(), t.get(), s.N, s.d, s.V, 1.0f, dlogp.get(),
                                                       nullptr, logp.get(), ent.get(), lse.get(), dh.get(), dW.get(),
                                                       false, nullptr);
    });
    if (s.V == 32768) {  // the fp32 path, against the fp32 peak
      auto hf = f.make(s.N * s.d), Wf = f.make(s.V * s.d);
      b.compute("fused_linear_logprob_fwd_bwd", shape, 4 * nvd, false, [&] {
        cuda::fused_linear_logprob_forward_backward(hf.get(), Wf.get(), t.get(), s.N, s.d, s.V, 1.0f, dlogp.get(),
                                                    nullptr, logp.get(), ent.get(), lse.get(), dh.get(), dW.get(),
                                                    false, nullptr);
      }, 2);
    }
  }
}

// The RL loss path: log-probs (and entropies) from logits, the GRPO loss, and dlogits.
void bench_logprob_grpo(Bench& b, const Filler& f) {
  struct Shape {
    int64_t B, T, V;
  } shapes[] = {{64, 1024, 268}, {16, 1024, 32768}};
  for (const Shape& s : shapes) {
    const int64_t N = s.B * s.T;
    const std::string shape = fmt("B=%lld T=%lld V=%lld", (long long)s.B, (long long)s.T, (long long)s.V);
    auto logits = f.make(N * s.V), dlogits = f.make(N * s.V), old = f.make(N), ref = f.make(N), adv = f.make(s.B);
    auto t = targets(N, s.V, 0);
    std::vector<float> mask_h(N);
    for (int64_t i = 0; i < N; ++i) mask_h[i] = (i % s.T) >= s.T / 4 ? 1.0f : 0.0f;  // a prompt, then the response
    auto mask = upload(mask_h);
    DeviceBuffer<float> logp(N), ent(N), lse(N), dlogp(N);
    DeviceBuffer<cuda::GrpoLossResult> res(1);
    GrpoOptions o;
    o.beta = 0.04;
    cuda::logprob_forward(logits.get(), t.get(), N, s.V, 1.0f, logp.get(), ent.get(), lse.get(), nullptr);
    cuda::copy_device(old.get(), logp.get(), N * sizeof(float), nullptr);  // ratios near 1, as in training
    cuda::copy_device(ref.get(), logp.get(), N * sizeof(float), nullptr);
    b.plain("logprob_grpo_fwd_bwd", shape, [&] {
      cuda::logprob_forward(logits.get(), t.get(), N, s.V, 1.0f, logp.get(), ent.get(), lse.get(), nullptr);
      cuda::grpo_loss(logp.get(), old.get(), ref.get(), mask.get(), adv.get(), ent.get(), s.B, s.T, o, dlogp.get(),
                      res.get(), nullptr);
      cuda::logprob_backward(logits.get(), t.get(), lse.get(), dlogp.get(), nullptr, N, s.V, 1.0f, dlogits.get(), false,
                             nullptr);
    });
  }
}

}  // namespace

std::vector<BenchResult> run_bench(const Peaks& p, const std::string& only) {
  std::printf("\nbenchmarks (%s; fp32 peak %.1f TFLOP/s, bf16 dense peak %.1f TFLOP/s, HBM %.0f GB/s)\n", p.name.c_str(),
              p.fp32_tflops, p.bf16_tflops, p.hbm_gbs);
  Filler f;
  Bench b{p, only, {}};
  bench_gemm(b, f);
  bench_memory(b, f);
  bench_attention(b, f);
  bench_fused(b, f);
  bench_logprob_grpo(b, f);
  return b.out;
}

}  // namespace medgym::check
