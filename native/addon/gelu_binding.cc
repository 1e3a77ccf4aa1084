// gelu / geluBackward (+ Async): thin wrappers over native/cpu/gelu.h.
#include "addon/args.h"
#include "cpu/gelu.h"

namespace medgym::addon {
namespace {

constexpr int64_t kMaxElems = int64_t(1) << 40;

Napi::Value GeluForward(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "gelu", async);
  auto inp = a.f32("input", -1);
  auto out = a.f32_out("out", static_cast<int64_t>(inp.length));
  int64_t n = static_cast<int64_t>(inp.length);
  if (n > kMaxElems) a.range_error("`input` is too large");
  const bool ref = a.boolean("reference", false);
  return a.run(async, [=] { (ref ? gelu_forward_ref : gelu_forward)(out.data, inp.data, n); });
}

Napi::Value GeluBackward(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "geluBackward", async);
  auto inp = a.f32("input", -1);
  int64_t n = static_cast<int64_t>(inp.length);
  auto dout = a.f32("dout", n);
  auto dinp = a.f32_out("dinput", n);
  bool acc = a.boolean("accumulate", false);
  const bool ref = a.boolean("reference", false);
  return a.run(async, [=] { (ref ? gelu_backward_ref : gelu_backward)(dinp.data, inp.data, dout.data, n, acc); });
}

void Init(Napi::Env env, Napi::Object exports) {
  export_sync_async(env, exports, "gelu", GeluForward);
  export_sync_async(env, exports, "geluBackward", GeluBackward);
}

MEDGYM_REGISTER_BINDINGS(Init);

}  // namespace
}  // namespace medgym::addon
