// Benchmarks of the policy on the GPU, `base` preset (d768 L12 H12, V268, 87M parameters):
//   policy_train_step   forward(keep) + backward + AdamW over B=16 x T=1024 text tokens: tokens/s and
//                       MFU = model flops / time / the device's dense peak (bf16 peak for bf16, fp32
//                       peak for fp32). Model flops per token: 6 N_matmul (N_matmul = 12 L d^2 + V d,
//                       the GEMM weights incl. the head) + 6 L d T (causal attention, fwd + bwd).
//   policy_forward      scoring forward (nothing kept) of the same batch: 2 N_matmul + 2 L d T per token.
//   policy_decode       Session::generate, batch 64, 128 new tokens each (temperature 1, host sampling),
//                       after a prefill of one image + 32 text tokens each: decode tokens/s.
//   policy_grpo_step    one GRPO-shaped step: 8 prompts x 8 samples generated (64 new tokens), a
//                       forward for the old logp, forward(keep) + loss (CPU grpo kernels) + backward +
//                       AdamW. Wall time of the whole step.
// Host timers around synchronizing calls (every CudaModel call ends with a stream synchronize).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>

#include "cpu/grpo.h"
#include "cuda/check/check.h"
#include "model/generate.h"
#include "model/gpu/cuda_model.h"
#include "model/model.h"

namespace medgym::check {

namespace {

using model::Config;
using model::Model;
using model::SeqInput;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

Config base_config() {
  Config c;
  c.V = 268, c.d = 768, c.L = 12, c.H = 12, c.T = 2048, c.P = 8, c.S = 64, c.C = 3, c.image_id = 259;
  return c;
}

double matmul_params(const Config& c) { return 12.0 * c.L * c.d * c.d + double(c.V) * c.d; }

void print(const BenchResult& r) {
  std::printf("%-40s %-34s %9.3f ms", r.name.c_str(), r.shape.c_str(), r.ms);
  if (r.tokens_per_s > 0) std::printf(" %12.0f tok/s", r.tokens_per_s);
  if (r.roof == "bf16" || r.roof == "fp32")
    std::printf(" %7.1f TFLOP/s  MFU %5.1f%% of the %s peak", r.tflops, 100 * r.frac, r.roof.c_str());
  std::printf("\n");
  std::fflush(stdout);
}

struct Text {
  std::vector<std::vector<int32_t>> tokens;
  std::vector<std::vector<uint8_t>> pixels;
  std::vector<SeqInput> inputs() const {
    std::vector<SeqInput> v(tokens.size());
    for (size_t i = 0; i < v.size(); ++i)
      v[i].tokens = tokens[i].data(), v[i].n_tokens = int64_t(tokens[i].size()), v[i].pixels = pixels[i].data();
    return v;
  }
};

// B sequences: `images` <|image|> tokens first (then text), `text` text tokens (ids < 256).
Text make_text(const Config& c, Rng& rng, int64_t B, int64_t text, int images) {
  Text t;
  for (int64_t b = 0; b < B; ++b) {
    std::vector<int32_t> ids(images, static_cast<int32_t>(c.image_id));
    for (int64_t i = 0; i < text; ++i) ids.push_back(static_cast<int32_t>(rng.integer(0, 255)));
    std::vector<uint8_t> px(images * c.image_bytes());
    for (auto& p : px) p = static_cast<uint8_t>(rng.integer(0, 255));
    t.tokens.push_back(ids), t.pixels.push_back(px);
  }
  return t;
}

std::shared_ptr<Model> base_on_gpu(bool bf16) {
  auto m = std::make_shared<Model>(base_config(), 0);
  model::gpu::CudaOptions o;
  o.bf16 = bf16;
  m->accel = model::gpu::make_cuda_accelerator(*m, o);
  return m;
}

void train_and_forward(std::vector<BenchResult>& out, const Peaks& p, bool bf16, bool train, bool fwd) {
  const Config c = base_config();
  auto m = base_on_gpu(bf16);
  Rng rng(1);
  const int64_t B = 16, T = 1024;
  const Text batch = make_text(c, rng, B, T, 0);
  const std::vector<SeqInput> in = batch.inputs();
  const int64_t N = B * T;
  std::vector<float> logp(N), ent(N), dl(N, -1.0f / N);
  const char* dt = bf16 ? "bf16" : "fp32";
  const double peak = bf16 ? p.bf16_tflops : p.fp32_tflops;
  model::AdamHyper hp;
  hp.lr = 1e-5;
  auto step = [&] {
    m->forward(in, 1.0f, true, true, logp.data(), ent.data());
    m->backward(dl.data(), nullptr);
    m->step(hp);
  };
  if (train) {
    step();  // warm-up: allocations, pool
    const int iters = 3;
    const auto t0 = Clock::now();
    for (int i = 0; i < iters; ++i) step();
    BenchResult r;
    r.name = "policy_train_step", r.shape = fmt("base B=16 T=1024 %s", dt), r.ms = ms_since(t0) / iters;
    r.flops = N * (6.0 * matmul_params(c) + 6.0 * c.L * c.d * T);
    r.tflops = r.flops / (r.ms * 1e-3) * 1e-12, r.frac = peak > 0 ? r.tflops / peak : 0, r.roof = dt;
    r.tokens_per_s = N / (r.ms * 1e-3);
    print(r);
    out.push_back(r);
  }
  if (fwd) {
    m->forward(in, 1.0f, true, false, logp.data(), ent.data());
    const int iters = 5;
    const auto t0 = Clock::now();
    for (int i = 0; i < iters; ++i) m->forward(in, 1.0f, true, false, logp.data(), ent.data());
    BenchResult r;
    r.name = "policy_forward", r.shape = fmt("base B=16 T=1024 %s", dt), r.ms = ms_since(t0) / iters;
    r.flops = N * (2.0 * matmul_params(c) + 2.0 * c.L * c.d * T);
    r.tflops = r.flops / (r.ms * 1e-3) * 1e-12, r.frac = peak > 0 ? r.tflops / peak : 0, r.roof = dt;
    r.tokens_per_s = N / (r.ms * 1e-3);
    print(r);
    out.push_back(r);
  }
}

std::vector<std::array<uint64_t, 4>> keys_for(int64_t n, uint64_t step) {
  std::vector<std::array<uint64_t, 4>> k;
  for (int64_t i = 0; i < n; ++i) k.push_back({0, step, uint64_t(i / 8), uint64_t(i % 8)});
  return k;
}

void decode(std::vector<BenchResult>& out, bool bf16) {
  const Config c = base_config();
  auto m = base_on_gpu(bf16);
  Rng rng(2);
  const int64_t B = 64, new_tokens = 128;
  model::GenerateParams gp;
  gp.temperature = 1.0, gp.max_new_tokens = new_tokens;
  {  // warm-up (allocations, pool growth)
    model::Session s(m, true, 0, {});
    const Text w = make_text(c, rng, B, 32, 1);
    s.generate(s.add(w.tokens, w.pixels, keys_for(B, 0)), gp);
  }
  model::Session s(m, true, 0, {});
  const Text prompts = make_text(c, rng, B, 32, 1);
  const auto ids = s.add(prompts.tokens, prompts.pixels, keys_for(B, 1));
  const auto t0 = Clock::now();
  const auto res = s.generate(ids, gp);
  const double ms = ms_since(t0);
  int64_t n = 0;
  for (const auto& r : res) n += static_cast<int64_t>(r.tokens.size());
  BenchResult r;
  r.name = "policy_decode", r.shape = fmt("base batch=64 new=128 %s", bf16 ? "bf16" : "fp32");
  r.ms = ms / new_tokens;  // per decode step (64 tokens)
  r.tokens_per_s = n / (ms * 1e-3);
  r.roof = "-";
  print(r);
  out.push_back(r);
}

void grpo_step(std::vector<BenchResult>& out, bool bf16) {
  const Config c = base_config();
  auto m = base_on_gpu(bf16);
  Rng rng(3);
  const int64_t B = 64, prompt_text = 40, new_tokens = 64;
  model::GenerateParams gp;
  gp.temperature = 1.0, gp.max_new_tokens = new_tokens;
  auto one = [&](uint64_t step) {
    // 8 prompts, each repeated for its 8 samples
    Text prompts = make_text(c, rng, 8, prompt_text, 1), rep;
    for (int64_t i = 0; i < B; ++i) rep.tokens.push_back(prompts.tokens[i / 8]), rep.pixels.push_back(prompts.pixels[i / 8]);
    model::Session s(m, true, step, {});
    const auto ids = s.add(rep.tokens, rep.pixels, keys_for(B, step));
    const auto gen = s.generate(ids, gp);
    Text full = rep;
    std::vector<std::vector<int32_t>> masks(B);
    int64_t total = 0, Tm = 0;
    for (int64_t i = 0; i < B; ++i) {
      masks[i].assign(full.tokens[i].size(), 0);
      full.tokens[i].insert(full.tokens[i].end(), gen[i].tokens.begin(), gen[i].tokens.end());
      masks[i].resize(full.tokens[i].size(), 1);
      total += int64_t(full.tokens[i].size());
      Tm = std::max<int64_t>(Tm, int64_t(full.tokens[i].size()));
    }
    std::vector<SeqInput> in = full.inputs();
    for (int64_t i = 0; i < B; ++i) in[i].mask = masks[i].data();
    std::vector<float> flat(total), ent(total), old(B * Tm, 0.0f), lp(B * Tm, 0.0f), mask(B * Tm, 0.0f), dl(B * Tm);
    m->forward(in, 1.0f, false, false, flat.data(), ent.data());
    auto pad = [&](std::vector<float>& dst) {
      int64_t at = 0;
      for (int64_t i = 0; i < B; ++i)
        for (size_t k = 0; k < full.tokens[i].size(); ++k) dst[i * Tm + k] = flat[at++];
    };
    pad(old);
    for (int64_t i = 0; i < B; ++i)
      for (size_t k = 1; k < full.tokens[i].size(); ++k) mask[i * Tm + k] = float(masks[i][k]);
    m->forward(in, 1.0f, true, true, flat.data(), ent.data());
    pad(lp);
    std::vector<float> rewards(B), adv(B);
    std::vector<int32_t> groups(B);
    for (int64_t i = 0; i < B; ++i) rewards[i] = float(rng.integer(0, 1)), groups[i] = int32_t(i / 8);
    grpo_advantages(rewards.data(), groups.data(), B, GrpoScale::Std, adv.data());
    GrpoOptions o;
    grpo_loss(lp.data(), old.data(), nullptr, mask.data(), adv.data(), nullptr, B, Tm, o, dl.data(), nullptr);
    std::vector<float> dflat(total);
    int64_t at = 0;
    for (int64_t i = 0; i < B; ++i)
      for (size_t k = 0; k < full.tokens[i].size(); ++k) dflat[at++] = dl[i * Tm + k];
    m->backward(dflat.data(), nullptr);
    model::AdamHyper hp;
    hp.lr = 1e-5;
    m->step(hp);
  };
  one(0);  // warm-up
  const auto t0 = Clock::now();
  one(1);
  BenchResult r;
  r.name = "policy_grpo_step";
  r.shape = fmt("base 8x8 prompt=1img+40 new=64 %s", bf16 ? "bf16" : "fp32");
  r.ms = ms_since(t0);
  r.roof = "-";
  print(r);
  out.push_back(r);
}

}  // namespace

std::vector<BenchResult> run_policy_bench(const Peaks& p, const std::string& only) {
  std::vector<BenchResult> out;
  auto wanted = [&](const char* name) { return only.empty() || std::string(name).find(only) != std::string::npos; };
  if (!wanted("policy_train_step") && !wanted("policy_forward") && !wanted("policy_decode") &&
      !wanted("policy_grpo_step"))
    return out;
  std::string why;
  if (!model::gpu::cuda_usable(&why, nullptr)) throw std::runtime_error("the GPU cannot run the policy: " + why);
  std::printf("\npolicy benchmarks (`base` preset; MFU against the %s dense peaks: bf16 %.1f, fp32 %.1f TFLOP/s)\n",
              p.name.c_str(), p.bf16_tflops, p.fp32_tflops);
  for (bool bf16 : {true, false}) {
    train_and_forward(out, p, bf16, wanted("policy_train_step"), wanted("policy_forward"));
    if (wanted("policy_decode")) decode(out, bf16);
    if (wanted("policy_grpo_step") && bf16) grpo_step(out, bf16);
  }
  return out;
}

}  // namespace medgym::check
