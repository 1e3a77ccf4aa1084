// adamw (+ Async): thin wrapper over native/cpu/adamw.h.
#include "addon/args.h"
#include "cpu/adamw.h"

namespace medgym::addon {
namespace {

Napi::Value AdamW(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "adamw", async);
  auto param = a.f32_out("param", -1);
  const int64_t n = static_cast<int64_t>(param.length);
  if (n == 0) a.range_error("Expected a non-empty Float32Array for `param` but received length 0 (is its buffer detached?)");
  auto grad = a.f32("grad", n);
  auto m = a.f32_out("m", n);
  auto v = a.f32_out("v", n);
  AdamWParams hp;
  hp.lr = a.number("lr", 0.0, 1e6);
  hp.beta1 = a.number("beta1", 0.0, 0.999999999, 0.9);
  hp.beta2 = a.number("beta2", 0.0, 0.999999999, 0.999);
  hp.eps = a.number("eps", 0.0, 1e6, 1e-8);
  hp.weight_decay = a.number("weightDecay", 0.0, 1e6, 1e-2);
  hp.step = a.integer("step", 1, int64_t(1) << 53);
  const bool ref = a.boolean("reference", false);
  return a.run(async, [=] { (ref ? adamw_step_ref : adamw_step)(param.data, grad.data, m.data, v.data, n, hp); });
}

void Init(Napi::Env env, Napi::Object exports) { export_sync_async(env, exports, "adamw", AdamW); }

MEDGYM_REGISTER_BINDINGS(Init);

}  // namespace
}  // namespace medgym::addon
