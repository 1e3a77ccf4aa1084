// GRPO (advantages, loss + metrics + dlogp over every aggregation / KL / clip option), AdamW and
// gradient clipping against their CPU twins. Advantages and AdamW are computed with the CPU's exact
// operation order and are expected bit-identical (checked with a 1e-6 element bound, and the bits
// reported); losses are sums in double (bound 1e-9), dlogp a single float rounding of a double.
#include <cmath>
#include <cstring>

#include "cpu/adamw.h"
#include "cpu/grad_clip.h"
#include "cpu/grpo.h"
#include "cuda/check/check.h"

namespace medgym::check {

namespace {

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

void advantages_case(Checker& c, int64_t B, int group, GrpoScale scale) {
  Rng rng(static_cast<uint64_t>(B * 3 + group + int(scale)));
  const std::string shape = fmt("B=%lld G=%d %s", (long long)B, group, scale == GrpoScale::Std ? "std" : "none");
  std::vector<float> r(B);
  std::vector<int32_t> g(B);
  for (int64_t i = 0; i < B; ++i) {
    g[i] = static_cast<int32_t>((i * 7919) % std::max<int64_t>(1, B / group));  // scattered members
    r[i] = static_cast<float>(rng.integer(0, 2)) * 0.5f;                      // ties and equal groups
  }
  if (B > 3) g[B - 1] = 1 << 30;  // a group of one
  std::vector<float> adv(B);
  const GrpoAdvantageStats st = grpo_advantages(r.data(), g.data(), B, scale, adv.data());
  auto gr = upload(r), gadv = upload(std::vector<float>(B));
  auto gg = upload(g);
  DeviceBuffer<GrpoAdvantageStats> gst(1);
  cuda::grpo_advantages(gr.get(), gg.get(), B, scale, gadv.get(), gst.get(), nullptr);
  const std::vector<float> got = download(gadv);
  const GrpoAdvantageStats gs = download(gst)[0];
  c.expect("grpo_advantages", shape, "adv", compare(got, adv), 1e-6, Metric::Elementwise);
  c.expect_true("grpo_advantages", shape, "adv bit-identical to the CPU", same_bits(got, adv));
  c.expect_true("grpo_advantages", shape,
                fmt("groups %lld/%lld equal %lld/%lld", (long long)gs.num_groups, (long long)st.num_groups,
                    (long long)gs.equal_reward_groups, (long long)st.equal_reward_groups),
                gs.num_groups == st.num_groups && gs.equal_reward_groups == st.equal_reward_groups);
}

void loss_case(Checker& c, int64_t B, int64_t T, const GrpoOptions& o, bool ref, bool ent) {
  Rng rng(static_cast<uint64_t>(B * 100 + T + int(o.agg) * 7 + int(o.kl) * 3 + ref * 2 + ent));
  const std::string shape = fmt("B=%lld T=%lld agg=%d kl=%d dual=%g beta=%g ref=%d ent=%d", (long long)B,
                                (long long)T, int(o.agg), int(o.kl), o.dual_clip, o.beta, ref, ent);
  std::vector<float> logp = rng.uniform(B * T, -4.0f, -0.1f), old = logp, refp = logp, mask(B * T), adv(B),
                     e = rng.uniform(B * T, 0.0f, 3.0f);
  for (int64_t j = 0; j < B * T; ++j) {
    old[j] = logp[j] + rng.normal(1, 0.3f)[0];  // ratios on both sides of the clip range
    refp[j] = logp[j] + rng.normal(1, 0.2f)[0];
    mask[j] = (j % T) < T / 4 ? 0.0f : (rng.integer(0, 9) ? 1.0f : 0.0f);  // a prompt, and holes
  }
  for (int64_t t = 0; t < T; ++t) mask[t] = 0.0f;  // a fully masked row
  for (int64_t i = 0; i < B; ++i) adv[i] = rng.normal(1, 1.0f)[0];
  std::vector<float> dlogp(B * T);
  GrpoMetrics m;
  const double loss = grpo_loss(logp.data(), old.data(), ref ? refp.data() : nullptr, mask.data(), adv.data(),
                                ent ? e.data() : nullptr, B, T, o, dlogp.data(), &m);
  auto glp = upload(logp), gold = upload(old), gref = upload(refp), gmask = upload(mask), gadv = upload(adv),
       ge = upload(e), gd = upload(std::vector<float>(B * T));
  DeviceBuffer<cuda::GrpoLossResult> gres(1);
  cuda::grpo_loss(glp.get(), gold.get(), ref ? gref.get() : nullptr, gmask.get(), gadv.get(), ent ? ge.get() : nullptr,
                  B, T, o, gd.get(), gres.get(), nullptr);
  const cuda::GrpoLossResult got = download(gres)[0];
  c.expect("grpo_loss", shape, "loss", compare_scalar(got.loss, loss), 1e-9);
  c.expect("grpo_loss", shape, "dlogp", compare(download(gd), dlogp), 1e-6);
  const double gm[7] = {got.metrics.clip_frac_low, got.metrics.clip_frac_high, got.metrics.dual_clip_frac,
                        got.metrics.approx_kl,     got.metrics.kl,             got.metrics.entropy,
                        got.metrics.mask_sum};
  const double wm[7] = {m.clip_frac_low, m.clip_frac_high, m.dual_clip_frac, m.approx_kl, m.kl, m.entropy, m.mask_sum};
  const char* names[7] = {"clip_frac_low", "clip_frac_high", "dual_clip_frac", "approx_kl", "kl", "entropy", "mask_sum"};
  for (int q = 0; q < 7; ++q) c.expect("grpo_loss", shape, names[q], compare_scalar(gm[q], wm[q]), 1e-9);
}

void adamw_case(Checker& c, int64_t n, int64_t step) {
  Rng rng(static_cast<uint64_t>(n + step));
  const std::string shape = fmt("n=%lld step=%lld", (long long)n, (long long)step);
  std::vector<float> p = rng.normal(n, 1.0f), g = rng.normal(n, 0.1f), m = rng.normal(n, 0.01f),
                     v = rng.uniform(n, 0.0f, 1e-3f);
  AdamWParams hp;
  hp.lr = 3e-4, hp.weight_decay = 0.1, hp.step = step;
  auto gp = upload(p), gg = upload(g), gm = upload(m), gv = upload(v);
  adamw_step(p.data(), g.data(), m.data(), v.data(), n, hp);
  cuda::adamw_step(gp.get(), gg.get(), gm.get(), gv.get(), n, hp, nullptr);
  const std::vector<float> gotp = download(gp), gotm = download(gm), gotv = download(gv);
  c.expect("adamw_step", shape, "param", compare(gotp, p), 1e-6, Metric::Elementwise);
  c.expect("adamw_step", shape, "m", compare(gotm, m), 1e-6, Metric::Elementwise);
  c.expect("adamw_step", shape, "v", compare(gotv, v), 1e-6, Metric::Elementwise);
  c.expect_true("adamw_step", shape, "param/m/v bit-identical to the CPU",
                same_bits(gotp, p) && same_bits(gotm, m) && same_bits(gotv, v));
}

void clip_case(Checker& c, double max_norm, bool poison) {
  const int64_t lens[] = {0, 1, 4097, 100000, 3, 70000};
  const int count = 6;
  Rng rng(static_cast<uint64_t>(max_norm * 10 + poison));
  const std::string shape = fmt("6 arrays max_norm=%g%s", max_norm, poison ? " inf" : "");
  std::vector<std::vector<float>> host(count);
  std::vector<DeviceBuffer<float>> dev;
  std::vector<float*> hp(count), dp(count);
  for (int a = 0; a < count; ++a) {
    host[a] = rng.normal(lens[a], 0.05f);
    if (poison && a == 3) host[a][17] = INFINITY;
    dev.push_back(upload(host[a]));
    hp[a] = host[a].data(), dp[a] = dev.back().get();
  }
  double ssq_want = grad_sum_squares(const_cast<const float* const*>(hp.data()), lens, count);
  DeviceBuffer<double> gssq(1);
  cuda::grad_sum_squares(const_cast<const float* const*>(dp.data()), lens, count, gssq.get(), nullptr);
  c.expect("grad_sum_squares", shape, "sum", compare_scalar(download(gssq)[0], ssq_want), 1e-12);
  const GradClipResult want = grad_clip(hp.data(), lens, count, max_norm);
  DeviceBuffer<GradClipResult> gres(1);
  cuda::grad_clip(dp.data(), lens, count, max_norm, gres.get(), nullptr);
  const GradClipResult got = download(gres)[0];
  c.expect("grad_clip", shape, "norm", compare_scalar(got.norm, want.norm), 1e-12);
  c.expect("grad_clip", shape, "scale", compare_scalar(got.scale, want.scale), 1e-12);
  c.expect_true("grad_clip", shape, fmt("clipped %d/%d finite %d/%d", got.clipped, want.clipped, got.finite, want.finite),
                got.clipped == want.clipped && got.finite == want.finite);
  for (int a = 0; a < count; ++a)
    c.expect("grad_clip", shape, fmt("array %d", a), compare(download(dev[a]), host[a]), 1e-6, Metric::Elementwise);
}

}  // namespace

void check_optim(Checker& c) {
  for (int64_t B : {1, 2, 16, 67, 1500})
    for (int group : {1, 4, 8})
      for (GrpoScale s : {GrpoScale::Std, GrpoScale::None}) advantages_case(c, B, group, s);
  for (int agg = 0; agg < 4; ++agg)
    for (int kl = 0; kl < 3; ++kl)
      for (int variant = 0; variant < 2; ++variant) {
        GrpoOptions o;
        o.agg = static_cast<GrpoAgg>(agg);
        o.kl = static_cast<GrpoKl>(kl);
        o.eps_high = variant ? 0.28 : 0.2;
        o.dual_clip = variant ? 0.0 : 3.0;  // off / on
        o.beta = variant ? 0.04 : 0.0;
        o.t_norm = agg == 3 && variant ? 100.0 : 0.0;
        loss_case(c, 16, 37, o, variant == 1 || kl == 2, variant == 0);
        if (agg == 0 && kl == 0) loss_case(c, 3, 1000, o, true, true);
      }
  for (int64_t n : {int64_t(1), int64_t(1000), int64_t(1 << 20) + 7})
    for (int64_t step : {1, 2, 1000}) adamw_case(c, n, step);
  for (double mn : {1e9, 1.0, 0.01}) clip_case(c, mn, false);
  clip_case(c, 1.0, true);
}

}  // namespace medgym::check
