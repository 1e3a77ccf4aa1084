// grpoAdvantages / grpoLoss (+ Async): thin wrappers over native/cpu/grpo.h.
#include <cmath>
#include <memory>
#include <string>

#include "addon/args.h"
#include "cpu/grpo.h"

namespace medgym::addon {
namespace {

constexpr int64_t kMaxDim = int64_t(1) << 31;

GrpoScale read_scale(Args& a) { return static_cast<GrpoScale>(a.choice("scale", {"std", "none"}, 0)); }

// The mask is a finite non-negative weight per token (0/1 usually).
void check_mask(Args& a, View<float> mask) {
  for (size_t i = 0; i < mask.length; ++i)
    if (!(std::isfinite(mask.data[i]) && mask.data[i] >= 0.0f))
      a.range_error("Expected finite non-negative weights (0 or 1 usually) in `mask` but element " +
                    std::to_string(i) + " is " + std::to_string(mask.data[i]));
}

// Values the loss reads (where mask > 0) must be finite; masked-out tokens may hold anything.
void check_finite_where_masked(Args& a, const char* name, View<float> v, View<float> mask) {
  if (!v) return;
  for (size_t i = 0; i < v.length; ++i)
    if (mask.data[i] > 0.0f && !std::isfinite(v.data[i]))
      a.range_error(std::string("Expected finite values in `") + name + "` where `mask` > 0 but element " +
                    std::to_string(i) + " is " + (std::isnan(v.data[i]) ? "NaN" : "infinite"));
}

Napi::Value Advantages(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "grpoAdvantages", async);
  auto rewards = a.f32("rewards", -1);
  const int64_t B = static_cast<int64_t>(rewards.length);
  auto groups = a.i32("groups", B);
  const GrpoScale scale = read_scale(a);
  auto adv = a.f32_out("advantages", B);
  const bool ref = a.boolean("reference", false);
  a.require_finite("rewards", rewards);
  auto st = std::make_shared<GrpoAdvantageStats>();
  return a.run(
      async, [=] { *st = (ref ? grpo_advantages_ref : grpo_advantages)(rewards.data, groups.data, B, scale, adv.data); },
      [st](Napi::Env env) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("numGroups", static_cast<double>(st->num_groups));
        o.Set("equalRewardGroups", static_cast<double>(st->equal_reward_groups));
        return o;
      });
}

Napi::Value Loss(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "grpoLoss", async);
  const int64_t B = a.integer("batch", 0, kMaxDim);
  const int64_t T = a.integer("seqLen", 0, kMaxDim);
  const int64_t BT = checked_mul(a, {B, T});
  const bool from_rewards = a.has("rewards");
  if (!from_rewards && !a.has("advantages"))
    a.type_error("Expected Float32Array for `rewards` (with `groups`) or for `advantages` but received neither");
  if (from_rewards && a.has("advantages"))
    a.type_error("Pass either `rewards` and `groups` or precomputed `advantages`, not both");
  auto logp = a.f32("logp", BT);
  auto old_logp = a.f32("oldLogp", BT);
  auto ref_logp = a.f32_optional("refLogp", BT);
  auto mask = a.f32("mask", BT);
  auto entropy = a.f32_optional("entropy", BT);

  // Advantages: computed from rewards + groups, or given.
  View<float> rewards, adv_in, adv_out;
  View<int32_t> groups;
  GrpoScale scale = GrpoScale::Std;
  if (from_rewards) {
    rewards = a.f32("rewards", B);
    groups = a.i32("groups", B);
    scale = read_scale(a);
    adv_out = a.f32_out("advantagesOut", B);
    a.require_finite("rewards", rewards);
  } else {
    adv_in = a.f32("advantages", B);
    a.require_finite("advantages", adv_in);
  }

  GrpoOptions opt;
  opt.eps_low = a.number("epsLow", 0.0, 1.0, 0.2);
  opt.eps_high = a.number("epsHigh", 0.0, 1e6, 0.2);
  opt.dual_clip = a.number("dualClip", 0.0, 1e9, 3.0);
  opt.beta = a.number("beta", 0.0, 1e9, 0.0);
  opt.kl = static_cast<GrpoKl>(a.choice("kl", {"k1", "k2", "k3"}, 2));
  opt.agg = static_cast<GrpoAgg>(
      a.choice("lossAgg", {"token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"}, 0));
  opt.t_norm = a.number("tNorm", 1e-30, 1e30, static_cast<double>(T));
  if (opt.beta > 0 && !ref_logp) a.type_error("Expected Float32Array for `refLogp` (required when `beta` > 0) but received none");
  auto dlogp = a.f32_out("dlogp", BT);
  const bool ref = a.boolean("reference", false);

  check_mask(a, mask);
  check_finite_where_masked(a, "logp", logp, mask);
  check_finite_where_masked(a, "oldLogp", old_logp, mask);
  check_finite_where_masked(a, "refLogp", ref_logp, mask);
  check_finite_where_masked(a, "entropy", entropy, mask);

  struct Out {
    double loss = 0;
    GrpoMetrics m;
    GrpoAdvantageStats st;
  };
  auto out = std::make_shared<Out>();
  return a.run(
      async,
      [=] {
        const float* adv = adv_in.data;
        if (from_rewards) {
          out->st = (ref ? grpo_advantages_ref : grpo_advantages)(rewards.data, groups.data, B, scale, adv_out.data);
          adv = adv_out.data;
        }
        out->loss = (ref ? grpo_loss_ref : grpo_loss)(logp.data, old_logp.data, ref_logp.data, mask.data, adv,
                                                      entropy.data, B, T, opt, dlogp.data, &out->m);
      },
      [out, from_rewards](Napi::Env env) {
        Napi::Object o = Napi::Object::New(env);
        auto num_or_null = [&](double v) -> Napi::Value {
          return std::isnan(v) ? env.Null() : Napi::Number::New(env, v);
        };
        o.Set("loss", out->loss);
        o.Set("clipFracLow", out->m.clip_frac_low);
        o.Set("clipFracHigh", out->m.clip_frac_high);
        o.Set("dualClipFrac", out->m.dual_clip_frac);
        o.Set("approxKl", out->m.approx_kl);
        o.Set("kl", num_or_null(out->m.kl));
        o.Set("entropy", num_or_null(out->m.entropy));
        o.Set("maskSum", out->m.mask_sum);
        o.Set("numGroups", from_rewards ? Napi::Value(Napi::Number::New(env, static_cast<double>(out->st.num_groups)))
                                        : env.Null());
        o.Set("equalRewardGroups",
              from_rewards ? Napi::Value(Napi::Number::New(env, static_cast<double>(out->st.equal_reward_groups)))
                           : env.Null());
        return o;
      });
}

void Init(Napi::Env env, Napi::Object exports) {
  export_sync_async(env, exports, "grpoAdvantages", Advantages);
  export_sync_async(env, exports, "grpoLoss", Loss);
}

MEDGYM_REGISTER_BINDINGS(Init);

}  // namespace
}  // namespace medgym::addon
