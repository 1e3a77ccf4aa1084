// Log-prob / entropy / log-softmax, cross-entropy and the fused linear log-prob against their CPU
// twins: ignored rows (target -1), -inf logits, temperatures 1 and 0.7, accumulation, lse given or
// recomputed, entropy given or recomputed. bf16 fused: h and W rounded first (the CPU uses the
// rounded values); its backward rounds dlogits to bf16 before the two gradient GEMMs (bound 1e-2).
#include <algorithm>
#include <cmath>

#include "cpu/cross_entropy.h"
#include "cpu/fused_linear_logprob.h"
#include "cpu/logprob.h"
#include "cuda/check/check.h"

namespace medgym::check {

namespace {

std::vector<int32_t> make_targets(Rng& rng, int64_t N, int64_t V) {
  std::vector<int32_t> t(N);
  for (int64_t i = 0; i < N; ++i) t[i] = (i % 4 == 1) ? -1 : static_cast<int32_t>(rng.integer(0, V - 1));
  return t;
}

void logprob_case(Checker& c, int64_t N, int64_t V, float tau) {
  Rng rng(static_cast<uint64_t>(N * 31 + V + int(tau * 10)));
  const std::string shape = fmt("N=%lld V=%lld tau=%g", (long long)N, (long long)V, tau);
  std::vector<float> x = rng.normal(N * V, 3.0f), g = rng.normal(N, 1.0f), h = rng.normal(N, 1.0f),
                     d0 = rng.normal(N * V, 1.0f);
  const std::vector<int32_t> t = make_targets(rng, N, V);
  for (int64_t i = 3; i < N * V; i += 7)
    if (t[i / V] != static_cast<int32_t>(i % V)) x[i] = -INFINITY;  // masked vocabulary entries
  // The sizes of the terms that cancel in dlogits (g, h times probabilities) and in the loss (lse - x/tau).
  double g_scale = 0, x_scale = 0;
  for (int64_t i = 0; i < N; ++i) g_scale = std::max({g_scale, std::fabs(double(g[i])), std::fabs(double(h[i]))});
  for (float v : x)
    if (std::isfinite(v)) x_scale = std::max(x_scale, std::fabs(double(v)) / tau);
  std::vector<float> logp(N), ent(N), lse(N), ls(N * V);
  logprob_forward(x.data(), t.data(), N, V, tau, logp.data(), ent.data(), lse.data());
  log_softmax_forward(x.data(), N, V, tau, ls.data());
  auto gx = upload(x), gg = upload(g), gh = upload(h);
  auto gt = upload(t);
  auto glogp = upload(std::vector<float>(N)), gent = upload(std::vector<float>(N)), glse = upload(std::vector<float>(N));
  cuda::logprob_forward(gx.get(), gt.get(), N, V, tau, glogp.get(), gent.get(), glse.get(), nullptr);
  c.expect("logprob_forward", shape, "logp", compare(download(glogp), logp, 1.0), 1e-5, Metric::Elementwise);
  c.expect("logprob_forward", shape, "entropy", compare(download(gent), ent, 1.0), 1e-5, Metric::Elementwise);
  c.expect("logprob_forward", shape, "lse", compare(download(glse), lse, 1.0), 1e-5, Metric::Elementwise);
  auto gls = upload(std::vector<float>(N * V));
  cuda::log_softmax_forward(gx.get(), N, V, tau, gls.get(), nullptr);
  c.expect("log_softmax_forward", shape, "out", compare(download(gls), ls, 1.0), 1e-5, Metric::Elementwise);
  // Backward: {lse given, dlogp and dentropy}, {lse recomputed, dlogp only}, each with accumulation on/off.
  auto glse_cpu = upload(lse);
  for (int variant = 0; variant < 4; ++variant) {
    const bool with_lse = variant < 2, with_h = variant % 2 == 0, acc = variant % 3 == 0;
    std::vector<float> d = d0;
    logprob_backward(x.data(), t.data(), with_lse ? lse.data() : nullptr, g.data(), with_h ? h.data() : nullptr, N, V,
                     tau, d.data(), acc);
    auto gd = upload(d0);
    cuda::logprob_backward(gx.get(), gt.get(), with_lse ? glse_cpu.get() : nullptr, gg.get(),
                           with_h ? gh.get() : nullptr, N, V, tau, gd.get(), acc, nullptr);
    c.expect("logprob_backward", shape + fmt(" lse=%d H=%d acc=%d", with_lse, with_h, acc), "dlogits",
             relative_to(compare(download(gd), d), g_scale), 1e-5);
  }
  // Cross-entropy (tau as given), both reductions.
  for (CeReduction red : {CeReduction::Mean, CeReduction::Sum}) {
    const std::string s2 = shape + (red == CeReduction::Mean ? " mean" : " sum");
    std::vector<float> lse2(N), d = d0;
    const CrossEntropyResult want = cross_entropy_forward(x.data(), t.data(), N, V, tau, red, lse2.data());
    cross_entropy_backward(x.data(), t.data(), lse2.data(), N, V, tau, red, 0.5f, d.data(), true);
    DeviceBuffer<CrossEntropyResult> gres(1);
    auto glse2 = upload(std::vector<float>(N)), gd = upload(d0);
    cuda::cross_entropy_forward(gx.get(), gt.get(), N, V, tau, red, glse2.get(), gres.get(), nullptr);
    cuda::cross_entropy_backward(gx.get(), gt.get(), glse2.get(), N, V, tau, red, 0.5f, gd.get(), true, nullptr);
    const CrossEntropyResult got = download(gres)[0];
    c.expect("cross_entropy_forward", s2, "loss", relative_to(compare_scalar(got.loss, want.loss), x_scale),
             1e-5);
    c.expect_true("cross_entropy_forward", s2, fmt("count %lld == %lld", (long long)got.count, (long long)want.count),
                  got.count == want.count);
    c.expect("cross_entropy_backward", s2, "dlogits", compare(download(gd), d), 1e-5);
  }
}

void fused_case(Checker& c, int64_t N, int64_t d, int64_t V, float tau, bool bf) {
  Rng rng(static_cast<uint64_t>(N * 7 + d * 3 + V + bf));
  const std::string k = bf ? "fused_linear_logprob_bf16" : "fused_linear_logprob";
  const std::string shape = fmt("N=%lld d=%lld V=%lld tau=%g", (long long)N, (long long)d, (long long)V, tau);
  std::vector<float> h = rng.normal(N * d, 1.0f), W = rng.normal(V * d, 1.0f / std::sqrt(float(d))),
                     g = rng.normal(N, 1.0f), he = rng.normal(N, 1.0f), dh0 = rng.normal(N * d, 1.0f),
                     dW0 = rng.normal(V * d, 1e-3f);  // small: its rounding must not hide the increment
  if (bf) h = round_bf16(h), W = round_bf16(W);
  const std::vector<int32_t> t = make_targets(rng, N, V);
  std::vector<float> logp(N), ent(N), lse(N);
  fused_linear_logprob_forward(h.data(), W.data(), t.data(), N, d, V, tau, logp.data(), ent.data(), lse.data());
  auto gg = upload(g), ghe = upload(he);
  auto gt = upload(t);
  auto glogp = upload(std::vector<float>(N)), gent = upload(std::vector<float>(N)), glse = upload(std::vector<float>(N));
  DeviceBuffer<float> gh32, gW32;
  DeviceBuffer<Bf16> gh16, gW16;
  if (bf) gh16 = upload(to_bf16(h)), gW16 = upload(to_bf16(W));
  else gh32 = upload(h), gW32 = upload(W);
  if (bf)
    cuda::fused_linear_logprob_forward_bf16(gh16.get(), gW16.get(), gt.get(), N, d, V, tau, glogp.get(), gent.get(),
                                            glse.get(), nullptr);
  else
    cuda::fused_linear_logprob_forward(gh32.get(), gW32.get(), gt.get(), N, d, V, tau, glogp.get(), gent.get(),
                                       glse.get(), nullptr);
  c.expect(k + "_forward", shape, "logp", compare(download(glogp), logp, 1.0), 1e-5, Metric::Elementwise);
  c.expect(k + "_forward", shape, "entropy", compare(download(gent), ent, 1.0), 1e-5, Metric::Elementwise);
  c.expect(k + "_forward", shape, "lse", compare(download(glse), lse, 1.0), 1e-5, Metric::Elementwise);
  const double gb = bf ? 1e-2 : 1e-5;  // bf16: dlogits rounded to bf16 for the gradient GEMMs
  auto glse_cpu = upload(lse), gent_cpu = upload(ent);
  // {entropy given, dentropy}, {no entropy: recomputed, dentropy}, {dlogp only}; accumulate dh or not.
  for (int variant = 0; variant < 3; ++variant) {
    const bool with_h = variant < 2, give_ent = variant == 0, acc = variant == 1;
    std::vector<float> dh = dh0, dW = dW0;
    fused_linear_logprob_backward(h.data(), W.data(), t.data(), lse.data(), give_ent ? ent.data() : nullptr, g.data(),
                                  with_h ? he.data() : nullptr, N, d, V, tau, dh.data(), dW.data(), acc);
    auto gdh = upload(dh0), gdW = upload(dW0);
    if (bf)
      cuda::fused_linear_logprob_backward_bf16(gh16.get(), gW16.get(), gt.get(), glse_cpu.get(),
                                               give_ent ? gent_cpu.get() : nullptr, gg.get(),
                                               with_h ? ghe.get() : nullptr, N, d, V, tau, gdh.get(), gdW.get(), acc,
                                               nullptr);
    else
      cuda::fused_linear_logprob_backward(gh32.get(), gW32.get(), gt.get(), glse_cpu.get(),
                                          give_ent ? gent_cpu.get() : nullptr, gg.get(), with_h ? ghe.get() : nullptr, N,
                                          d, V, tau, gdh.get(), gdW.get(), acc, nullptr);
    const std::string s2 = shape + fmt(" H=%d ent=%d acc=%d", with_h, give_ent, acc);
    // dW is incremented: compare the increments.
    std::vector<float> got_dW = download(gdW), inc_got(dW.size()), inc_want(dW.size());
    for (size_t i = 0; i < dW.size(); ++i) inc_got[i] = got_dW[i] - dW0[i], inc_want[i] = dW[i] - dW0[i];
    c.expect(k + "_backward", s2, "dh", compare(download(gdh), dh), gb);
    c.expect(k + "_backward", s2, "dW", compare(inc_got, inc_want), gb);
  }
  // forward_backward in one call (no entropy output wanted, dentropy given: recomputed internally).
  {
    std::vector<float> dh(N * d), dW = dW0, lp(N);
    fused_linear_logprob_forward_backward(h.data(), W.data(), t.data(), N, d, V, tau, g.data(), he.data(), lp.data(),
                                          nullptr, nullptr, dh.data(), dW.data(), false);
    auto gdh = upload(std::vector<float>(N * d)), gdW = upload(dW0), glp = upload(std::vector<float>(N));
    if (bf)
      cuda::fused_linear_logprob_forward_backward_bf16(gh16.get(), gW16.get(), gt.get(), N, d, V, tau, gg.get(),
                                                       ghe.get(), glp.get(), nullptr, nullptr, gdh.get(), gdW.get(),
                                                       false, nullptr);
    else
      cuda::fused_linear_logprob_forward_backward(gh32.get(), gW32.get(), gt.get(), N, d, V, tau, gg.get(), ghe.get(),
                                                  glp.get(), nullptr, nullptr, gdh.get(), gdW.get(), false, nullptr);
    c.expect(k + "_forward_backward", shape, "logp", compare(download(glp), lp, 1.0), 1e-5, Metric::Elementwise);
    c.expect(k + "_forward_backward", shape, "dh", compare(download(gdh), dh), gb);
  }
}

}  // namespace

void check_logprob(Checker& c) {
  const int64_t lp[][2] = {{1, 1}, {5, 7}, {37, 268}, {64, 3000}, {9, 50257}, {3, 2049}};
  for (const auto& s : lp)
    for (float tau : {1.0f, 0.7f}) logprob_case(c, s[0], s[1], tau);
  const int64_t fl[][3] = {{1, 8, 5}, {37, 64, 268}, {130, 96, 1000}, {300, 128, 5003}, {257, 40, 129}};
  for (const auto& s : fl)
    for (bool bf : {false, true}) fused_case(c, s[0], s[1], s[2], s[0] % 2 ? 0.7f : 1.0f, bf);
}

}  // namespace medgym::check
