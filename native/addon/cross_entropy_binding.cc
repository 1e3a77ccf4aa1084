// crossEntropy / crossEntropyBackward (+ Async): thin wrappers over native/cpu/cross_entropy.h.
#include <cmath>
#include <memory>

#include "addon/args.h"
#include "addon/targets.h"
#include "cpu/cross_entropy.h"

namespace medgym::addon {
namespace {

struct Common {
  int64_t N, V;
  View<int32_t> targets;
  View<float> logits;
  float tau;
  CeReduction red;
};

Common read_common(Args& a) {
  Common c;
  c.V = a.integer("vocab", 1, kMaxVocab);
  c.targets = a.i32("targets", -1);
  c.N = static_cast<int64_t>(c.targets.length);
  c.logits = a.f32("logits", checked_mul(a, {c.N, c.V}));
  c.tau = static_cast<float>(a.number("temperature", kMinTemperature, kMaxTemperature, 1.0));
  c.red = static_cast<CeReduction>(a.choice("reduction", {"mean", "sum"}, 0));
  return c;
}

// Forward; with `dlogits` it also writes the gradient of the loss (times `dloss`, default 1).
Napi::Value Forward(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "crossEntropy", async);
  const Common c = read_common(a);
  auto lse = a.f32_out_optional("lse", c.N);
  auto dlogits = a.f32_out_optional("dlogits", c.N * c.V);
  const float dloss = static_cast<float>(a.number("dloss", -1e30, 1e30, 1.0));
  const bool acc = a.boolean("accumulate", false);
  const bool ref = a.boolean("reference", false);
  check_targets(a, "targets", c.targets, c.V);
  auto out = std::make_shared<CrossEntropyResult>();
  return a.run(
      async,
      [=] {
        std::unique_ptr<float[]> tmp;
        float* l = lse.data;
        if (dlogits && !l) tmp.reset(new float[c.N > 0 ? c.N : 1]), l = tmp.get();
        *out = (ref ? cross_entropy_forward_ref : cross_entropy_forward)(c.logits.data, c.targets.data, c.N, c.V, c.tau,
                                                                         c.red, l);
        if (dlogits)
          (ref ? cross_entropy_backward_ref : cross_entropy_backward)(c.logits.data, c.targets.data, l, c.N, c.V, c.tau,
                                                                      c.red, dloss, dlogits.data, acc);
      },
      [out](Napi::Env env) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("loss", out->loss);
        o.Set("count", static_cast<double>(out->count));
        return o;
      });
}

Napi::Value Backward(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "crossEntropyBackward", async);
  const Common c = read_common(a);
  auto lse = a.f32_optional("lse", c.N);
  auto dlogits = a.f32_out("dlogits", c.N * c.V);
  const float dloss = static_cast<float>(a.number("dloss", -1e30, 1e30, 1.0));
  const bool acc = a.boolean("accumulate", false);
  const bool ref = a.boolean("reference", false);
  check_targets(a, "targets", c.targets, c.V);
  return a.run(async, [=] {
    (ref ? cross_entropy_backward_ref : cross_entropy_backward)(c.logits.data, c.targets.data, lse.data, c.N, c.V,
                                                                c.tau, c.red, dloss, dlogits.data, acc);
  });
}

void Init(Napi::Env env, Napi::Object exports) {
  export_sync_async(env, exports, "crossEntropy", Forward);
  export_sync_async(env, exports, "crossEntropyBackward", Backward);
}

MEDGYM_REGISTER_BINDINGS(Init);

}  // namespace
}  // namespace medgym::addon
