// The policy on the GPU (native/model/gpu) against the same policy on the CPU (native/model), both
// built from the same seed on small random configs: per-token logp / entropy of a ragged batch with
// images and masks, every parameter's gradient, one clipped AdamW step, greedy and sampled KV-cache
// generation through model::Session (prefill, decode steps, appends, pool growth, slot reuse), and a
// few GRPO-shaped update steps on a fixed batch (loss finite and decreasing).
//
// Bounds (reasoned, not yet calibrated on a GPU; see docs/cuda.md):
//   fp32 logp / entropy: 1e-4 absolute. Summation orders differ (GEMM, attention, fused head), each
//     ~1e-6 relative; logits are O(1) here.
//   fp32 gradients: 1e-4 normwise per tensor (max |gpu - cpu| / max |cpu|).
//   bf16 logp / entropy: 5e-2 absolute; bf16 gradients: 5e-2 normwise. Every GEMM input is rounded
//     to bf16 (2^-9 relative), the head's dlogits too (fused bf16 bound 1e-2 normwise on its own);
//     through L blocks these compound to a few 1e-3 on logits of O(1).
//   AdamW with identical gradients: parameters within 1e-6 normwise of the CPU's update (the AdamW
//     kernel is bit-identical; the clip coefficient may differ in the last bit: other sum order).
//   fp32 greedy generation: identical tokens, logp within 1e-4.
#include <algorithm>
#include <cmath>
#include <memory>

#include "cpu/grpo.h"
#include "cuda/check/check.h"
#include "model/generate.h"
#include "model/gpu/cuda_model.h"
#include "model/model.h"

namespace medgym::check {

namespace {

using model::Config;
using model::FlatBuffer;
using model::Model;
using model::SeqInput;

constexpr double kLogpFp32 = 1e-4, kLogpBf16 = 5e-2;
constexpr double kGradFp32 = 1e-4, kGradBf16 = 5e-2;

Config tiny(int64_t d, int64_t H, int64_t L, int64_t C) {
  Config c;
  c.V = 97, c.d = d, c.L = L, c.H = H, c.T = 160, c.P = 4, c.S = 16, c.C = C, c.image_id = 90;
  return c;
}

std::string cfg_name(const Config& c, bool bf16) {
  return fmt("d%lld H%lld L%lld C%lld %s", (long long)c.d, (long long)c.H, (long long)c.L, (long long)c.C,
             bf16 ? "bf16" : "fp32");
}

std::shared_ptr<Model> on_gpu(const Config& c, uint64_t seed, bool bf16) {
  auto m = std::make_shared<Model>(c, seed);
  model::gpu::CudaOptions o;
  o.bf16 = bf16;
  m->accel = model::gpu::make_cuda_accelerator(*m, o);
  return m;
}

// Sequences of random text ids (never the image id) with `images[i]` <|image|> tokens spread in
// sequence i, random pixels, and a mask that skips about one token in six.
struct Batch {
  std::vector<std::vector<int32_t>> tokens, mask;
  std::vector<std::vector<uint8_t>> pixels;
  std::vector<SeqInput> inputs(bool with_mask) const {
    std::vector<SeqInput> v(tokens.size());
    for (size_t i = 0; i < v.size(); ++i) {
      v[i].tokens = tokens[i].data(), v[i].n_tokens = static_cast<int64_t>(tokens[i].size());
      v[i].pixels = pixels[i].data();
      v[i].mask = with_mask ? mask[i].data() : nullptr;
    }
    return v;
  }
  int64_t total() const {
    int64_t n = 0;
    for (const auto& t : tokens) n += static_cast<int64_t>(t.size());
    return n;
  }
};

std::vector<int32_t> random_text(const Config& c, Rng& rng, int64_t n) {
  std::vector<int32_t> t(n);
  for (auto& x : t) {
    x = static_cast<int32_t>(rng.integer(0, c.V - 2));
    if (x >= c.image_id) ++x;  // every id but the image's
  }
  return t;
}

Batch make_batch(const Config& c, Rng& rng, const std::vector<int64_t>& lengths, const std::vector<int>& images) {
  Batch b;
  for (size_t i = 0; i < lengths.size(); ++i) {
    std::vector<int32_t> t = random_text(c, rng, lengths[i]);
    for (int k = 0; k < images[i]; ++k) t[1 + k * 3] = static_cast<int32_t>(c.image_id);
    std::vector<uint8_t> px(images[i] * c.image_bytes());
    for (auto& p : px) p = static_cast<uint8_t>(rng.integer(0, 255));
    std::vector<int32_t> m(t.size());
    for (auto& x : m) x = rng.integer(0, 5) ? 1 : 0;
    b.tokens.push_back(t), b.pixels.push_back(px), b.mask.push_back(m);
  }
  return b;
}

std::vector<float> read(Model& m, FlatBuffer which, int64_t offset, int64_t n) {
  std::vector<float> out(n);
  m.accel->read(which, offset, n, out.data());
  return out;
}
std::vector<float> slice(const std::vector<float>& v, int64_t offset, int64_t n) {
  return std::vector<float>(v.begin() + offset, v.begin() + offset + n);
}

// Forward (keep) + backward on both, then one clipped AdamW step from identical gradients.
void forward_backward_step(Checker& c, const Config& cfg, bool bf16) {
  const std::string shape = cfg_name(cfg, bf16);
  Model cpu(cfg, 7);
  auto gpu = on_gpu(cfg, 7, bf16);
  Rng rng(static_cast<uint64_t>(cfg.d * 13 + cfg.L + bf16));
  // Two sequences of the same length (one batched attention call), images in two of them.
  const Batch b = make_batch(cfg, rng, {23, 30, 30, 17, 41}, {1, 0, 0, 2, 1});
  const std::vector<SeqInput> in = b.inputs(true);
  const int64_t total = b.total();
  std::vector<float> lc(total), ec(total), lg(total), eg(total);
  const float tau = 0.7f;
  const int64_t sc = cpu.forward(in, tau, true, true, lc.data(), ec.data());
  const int64_t sg = gpu->forward(in, tau, true, true, lg.data(), eg.data());
  c.expect_true("policy forward", shape, fmt("scored %lld == %lld", (long long)sg, (long long)sc), sc == sg);
  const double lb = bf16 ? kLogpBf16 : kLogpFp32;
  c.expect("policy forward", shape, "logp", compare(lg, lc), lb, Metric::Absolute);
  c.expect("policy forward", shape, "entropy", compare(eg, ec), lb, Metric::Absolute);

  // A scoring forward (no activations kept) gives the same values as the training one.
  std::vector<float> ls(total), es(total);
  Model& g = *gpu;
  {
    auto scorer = on_gpu(cfg, 7, bf16);
    scorer->forward(in, tau, true, false, ls.data(), es.data());
    c.expect("policy forward (scoring)", shape, "logp vs the CPU", compare(ls, lc), lb, Metric::Absolute);
  }

  std::vector<float> dl = rng.normal(total, 0.5f), de = rng.normal(total, 0.1f);
  cpu.backward(dl.data(), de.data());
  g.backward(dl.data(), de.data());
  c.expect_true("policy backward", shape, "activations consumed", !g.has_saved());
  const std::vector<float> gg = read(g, FlatBuffer::Grads, 0, cpu.layout.total);
  const double gb = bf16 ? kGradBf16 : kGradFp32;
  for (const model::TensorInfo& t : cpu.layout.tensors) {
    const std::vector<float> want = slice(cpu.grads, t.offset, t.size), got = slice(gg, t.offset, t.size);
    const Diff d = compare(got, want);
    if (d.max_ref == 0) c.expect("policy grad", shape, t.name + " (all zero)", d, 0.0, Metric::Absolute);
    else c.expect("policy grad", shape, t.name, d, gb);
  }

  // AdamW from identical gradients (the CPU's), clipping engaged.
  g.accel->write(FlatBuffer::Grads, 0, cpu.layout.total, cpu.grads.data());
  const std::vector<float> before = cpu.params;
  model::AdamHyper hp;
  hp.lr = 1e-3, hp.weight_decay = 0.1;
  double ss = 0;
  for (float x : cpu.grads) ss += double(x) * x;
  hp.max_grad_norm = 0.5 * std::sqrt(ss);
  const model::StepInfo ic = cpu.step(hp), ig = g.step(hp);
  c.expect_true("policy step", shape, fmt("step %lld clipped %d finite %d", (long long)ig.step, ig.clipped, ig.finite),
                ic.step == ig.step && ic.clipped == ig.clipped && ic.finite == ig.finite);
  c.expect("policy step", shape, "grad norm", compare_scalar(ig.grad_norm, ic.grad_norm), 1e-9);
  std::vector<float> dp_cpu(before.size()), dp_gpu(before.size());
  const std::vector<float> pg = read(g, FlatBuffer::Params, 0, cpu.layout.total);
  for (size_t i = 0; i < before.size(); ++i) dp_cpu[i] = cpu.params[i] - before[i], dp_gpu[i] = pg[i] - before[i];
  c.expect("policy step", shape, "parameter update", compare(dp_gpu, dp_cpu), 1e-6);
  c.expect("policy step", shape, "exp_avg", compare(read(g, FlatBuffer::M, 0, cpu.layout.total), cpu.m), 1e-6);
  c.expect("policy step", shape, "exp_avg_sq", compare(read(g, FlatBuffer::V, 0, cpu.layout.total), cpu.v), 1e-6);
  const std::vector<float> zeroed = read(g, FlatBuffer::Grads, 0, cpu.layout.total);
  c.expect_true("policy step", shape, "gradients zeroed",
                std::all_of(zeroed.begin(), zeroed.end(), [](float x) { return x == 0.0f; }));

  // SFT cross-entropy: the same loss and count, and a backward (gradients compared as above, on one tensor).
  int64_t nc = 0, ng = 0;
  cpu.zero_grad();
  g.zero_grad();
  const std::vector<float> pnow = read(g, FlatBuffer::Params, 0, cpu.layout.total);
  cpu.params = pnow;  // both from the GPU's parameters after the step
  const double lcpu = cpu.cross_entropy(in, true, 1.0, &nc), lgpu = g.cross_entropy(in, true, 1.0, &ng);
  c.expect_true("policy cross_entropy", shape, fmt("count %lld == %lld", (long long)ng, (long long)nc), nc == ng);
  c.expect("policy cross_entropy", shape, "loss", compare_scalar(lgpu, lcpu), bf16 ? 1e-2 : 1e-5);
  const model::TensorInfo& wte = cpu.layout.tensors[0];
  c.expect("policy cross_entropy", shape, "grad wte",
           compare(read(g, FlatBuffer::Grads, wte.offset, wte.size), slice(cpu.grads, wte.offset, wte.size)), gb);
}

// Greedy (and, fp32, sampled) generation through Session on both models: identical tokens.
void generation(Checker& c, const Config& cfg, bool bf16) {
  const std::string shape = cfg_name(cfg, bf16);
  auto cpu = std::make_shared<Model>(cfg, 11);
  auto gpu = on_gpu(cfg, 11, bf16);
  Rng rng(static_cast<uint64_t>(cfg.d + 5 * bf16));
  model::Session sc(cpu, true, 5, {}), sg(gpu, true, 5, {});
  auto add = [&](const Batch& b, int64_t first) {
    std::vector<std::array<uint64_t, 4>> keys;
    for (size_t i = 0; i < b.tokens.size(); ++i) keys.push_back({5, 0, uint64_t(first + i), 0});
    const auto ic = sc.add(b.tokens, b.pixels, keys), ig = sg.add(b.tokens, b.pixels, keys);
    return std::make_pair(ic, ig);
  };
  int64_t agree = 0, total = 0;
  bool ok_tokens = true, ok_finite = true;
  double worst_logp = 0;
  auto generate = [&](const std::vector<int64_t>& ic, const std::vector<int64_t>& ig, const model::GenerateParams& gp) {
    const auto oc = sc.generate(ic, gp), og = sg.generate(ig, gp);
    for (size_t i = 0; i < oc.size(); ++i) {
      ok_tokens = ok_tokens && oc[i].tokens == og[i].tokens;
      for (size_t k = 0; k < std::min(oc[i].tokens.size(), og[i].tokens.size()); ++k) {
        agree += oc[i].tokens[k] == og[i].tokens[k], ++total;
        if (oc[i].tokens[k] == og[i].tokens[k])
          worst_logp = std::max(worst_logp, double(std::fabs(oc[i].logp[k] - og[i].logp[k])));
      }
      for (float lp : og[i].logp) ok_finite = ok_finite && std::isfinite(lp);
    }
  };
  model::GenerateParams greedy;
  greedy.temperature = 0, greedy.max_new_tokens = 12;
  // 5 prompts (pool of 8 slots), generate; 6 more (the pool grows with live caches), generate all.
  const Batch p1 = make_batch(cfg, rng, {20, 9, 31, 14, 25}, {1, 0, 2, 0, 1});
  auto [c1, g1] = add(p1, 0);
  generate(c1, g1, greedy);
  const Batch p2 = make_batch(cfg, rng, {7, 12, 19, 5, 22, 8}, {0, 1, 0, 0, 1, 0});
  auto [c2, g2] = add(p2, 5);
  std::vector<int64_t> call = c1, gall = g1;
  call.insert(call.end(), c2.begin(), c2.end());
  gall.insert(gall.end(), g2.begin(), g2.end());
  greedy.max_new_tokens = 8;
  generate(call, gall, greedy);
  // Appends of different lengths (an image in one: the cache passes 64 positions and grows), then
  // generation again (prefill per sequence, then batched decode steps).
  const Batch ap = make_batch(cfg, rng, {3, 9, 6}, {0, 1, 0});
  const std::vector<int64_t> ac = {call[0], call[2], call[7]}, ag = {gall[0], gall[2], gall[7]};
  sc.append(ac, ap.tokens, ap.pixels);
  sg.append(ag, ap.tokens, ap.pixels);
  greedy.max_new_tokens = 6;
  generate(call, gall, greedy);
  // Released slots are reused by new sequences.
  sc.release(call[1]), sg.release(gall[1]), sc.release(call[4]), sg.release(gall[4]);
  const Batch p3 = make_batch(cfg, rng, {10, 16}, {0, 1});
  auto [c3, g3] = add(p3, 11);
  generate(c3, g3, greedy);
  if (!bf16) {
    c.expect_true("policy generate", shape, fmt("greedy tokens identical (%lld/%lld agree)", (long long)agree,
                                                  (long long)total), ok_tokens);
    c.expect("policy generate", shape, "greedy logp", compare_scalar(worst_logp, 0.0), kLogpFp32, Metric::Absolute);
    // Sampling: the same streams over logits equal to ~1e-6: the same tokens but for a draw within
    // that distance of a boundary (probability ~1e-6 per token).
    model::GenerateParams sample;
    sample.temperature = 1.0, sample.top_p = 0.9, sample.max_new_tokens = 10;
    agree = total = 0, ok_tokens = true;
    std::vector<int64_t> lc = c3, lg = g3;  // the live sequences (call[1] and call[4] were released)
    for (size_t i = 0; i < call.size(); ++i)
      if (i != 1 && i != 4) lc.push_back(call[i]), lg.push_back(gall[i]);
    generate(lc, lg, sample);
    c.expect_true("policy generate", shape,
                  fmt("sampled tokens identical (%lld/%lld agree)", (long long)agree, (long long)total), ok_tokens);
  } else {
    std::printf("policy generate %s: greedy tokens agree with the CPU's fp32 on %lld/%lld positions (not a check)\n",
                shape.c_str(), (long long)agree, (long long)total);
  }
  c.expect_true("policy generate", shape, "logp finite", ok_finite);
}

// GRPO-shaped updates on a fixed batch: one group of 4 completions of one prompt (with an image),
// old logp from the first forward, clipped surrogate (SPEC §2) via the CPU grpo kernels, backward,
// AdamW. The loss must stay finite and go down.
void grpo_steps(Checker& c, const Config& cfg, bool bf16) {
  const std::string shape = cfg_name(cfg, bf16);
  auto m = on_gpu(cfg, 3, bf16);
  Rng rng(17 + bf16);
  const std::vector<int32_t> prompt = [&] {
    std::vector<int32_t> p = random_text(cfg, rng, 10);
    p[2] = static_cast<int32_t>(cfg.image_id);
    return p;
  }();
  std::vector<uint8_t> px(cfg.image_bytes());
  for (auto& p : px) p = static_cast<uint8_t>(rng.integer(0, 255));
  const std::vector<int64_t> comp = {6, 9, 6, 12};
  const int64_t B = 4;
  int64_t T = 0;
  std::vector<std::vector<int32_t>> toks, masks;
  for (int64_t i = 0; i < B; ++i) {
    std::vector<int32_t> t = prompt, mk(prompt.size(), 0);
    const std::vector<int32_t> tail = random_text(cfg, rng, comp[i]);
    t.insert(t.end(), tail.begin(), tail.end());
    mk.resize(t.size(), 1);
    T = std::max<int64_t>(T, static_cast<int64_t>(t.size()));
    toks.push_back(t), masks.push_back(mk);
  }
  std::vector<SeqInput> in(B);
  for (int64_t i = 0; i < B; ++i)
    in[i].tokens = toks[i].data(), in[i].n_tokens = int64_t(toks[i].size()), in[i].pixels = px.data(),
    in[i].mask = masks[i].data();
  const std::vector<float> rewards = {1.0f, 0.0f, 0.5f, 0.0f};
  const std::vector<int32_t> groups(B, 0);
  std::vector<float> adv(B);
  grpo_advantages(rewards.data(), groups.data(), B, GrpoScale::Std, adv.data());
  // [B, T] padded views of the per-token arrays
  auto pad = [&](const std::vector<float>& flat) {
    std::vector<float> out(B * T, 0.0f);
    int64_t at = 0;
    for (int64_t i = 0; i < B; ++i)
      for (size_t k = 0; k < toks[i].size(); ++k) out[i * T + k] = flat[at++];
    return out;
  };
  std::vector<float> mask(B * T, 0.0f);
  for (int64_t i = 0; i < B; ++i)
    for (size_t k = 1; k < toks[i].size(); ++k) mask[i * T + k] = float(masks[i][k]);
  const int64_t total = B * int64_t(prompt.size()) + 6 + 9 + 6 + 12;
  std::vector<float> flat(total), ent(total);
  m->forward(in, 1.0f, false, false, flat.data(), ent.data());
  const std::vector<float> old = pad(flat);
  GrpoOptions o;
  std::vector<double> losses;
  bool finite = true;
  for (int step = 0; step < 6; ++step) {
    m->forward(in, 1.0f, true, true, flat.data(), ent.data());
    const std::vector<float> lp = pad(flat);
    std::vector<float> dlogp(B * T);
    const double loss = grpo_loss(lp.data(), old.data(), nullptr, mask.data(), adv.data(), nullptr, B, T, o,
                                  dlogp.data(), nullptr);
    losses.push_back(loss);
    finite = finite && std::isfinite(loss);
    std::vector<float> dflat(total);
    int64_t at = 0;
    for (int64_t i = 0; i < B; ++i)
      for (size_t k = 0; k < toks[i].size(); ++k) dflat[at++] = dlogp[i * T + k];
    m->backward(dflat.data(), nullptr);
    model::AdamHyper hp;
    hp.lr = 3e-3, hp.weight_decay = 0.0, hp.max_grad_norm = 1.0;
    const model::StepInfo si = m->step(hp);
    finite = finite && si.finite && std::isfinite(si.grad_norm);
  }
  std::string trace;
  for (double l : losses) trace += fmt("%s%.4f", trace.empty() ? "" : " ", l);
  c.expect_true("policy grpo steps", shape, "losses finite: " + trace, finite);
  c.expect_true("policy grpo steps", shape, "loss decreases: " + trace, losses.back() < losses.front());
}

}  // namespace

void check_policy(Checker& c) {
  std::string why;
  if (!model::gpu::cuda_usable(&why, nullptr)) {
    c.error("policy", "the GPU cannot run the policy: " + why);
    return;
  }
  // d = 64, 4 heads (hd 16, 16-byte rows); d = 36, 3 heads, 1 channel (odd sizes, element loads).
  const Config cfgs[] = {tiny(64, 4, 2, 3), tiny(36, 3, 1, 1)};
  for (const Config& cfg : cfgs)
    for (bool bf16 : {false, true}) {
      for (auto fn : {forward_backward_step, generation, grpo_steps}) {
        try {
          fn(c, cfg, bf16);
        } catch (const std::exception& e) {
          c.error("policy " + cfg_name(cfg, bf16), e.what());
        }
      }
    }
}

}  // namespace medgym::check
