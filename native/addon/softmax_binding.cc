// softmax / softmaxBackward (+ Async): thin wrappers over native/cpu/softmax.h.
#include "addon/args.h"
#include "cpu/softmax.h"

namespace medgym::addon {
namespace {

constexpr int64_t kMaxDim = int64_t(1) << 40;

Napi::Value SoftmaxForward(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "softmax", async);
  const int64_t N = a.integer("N", 1, kMaxDim), C = a.integer("C", 1, kMaxDim);
  const int64_t NC = checked_mul(a, {N, C});
  auto inp = a.f32("input", NC);
  const float scale = static_cast<float>(a.number("scale", 1e-30, 1e30, 1.0));
  auto out = a.f32_out("out", NC);
  const bool ref = a.boolean("reference", false);
  return a.run(async, [=] { (ref ? softmax_forward_ref : softmax_forward)(out.data, inp.data, N, C, scale); });
}

Napi::Value SoftmaxBackward(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "softmaxBackward", async);
  const int64_t N = a.integer("N", 1, kMaxDim), C = a.integer("C", 1, kMaxDim);
  const int64_t NC = checked_mul(a, {N, C});
  auto probs = a.f32("probs", NC);
  auto dout = a.f32("dout", NC);
  const float scale = static_cast<float>(a.number("scale", 1e-30, 1e30, 1.0));
  auto dinp = a.f32_out("dinput", NC);
  const bool acc = a.boolean("accumulate", false);
  const bool ref = a.boolean("reference", false);
  return a.run(async, [=] {
    (ref ? softmax_backward_ref : softmax_backward)(dinp.data, probs.data, dout.data, N, C, scale, acc);
  });
}

void Init(Napi::Env env, Napi::Object exports) {
  export_sync_async(env, exports, "softmax", SoftmaxForward);
  export_sync_async(env, exports, "softmaxBackward", SoftmaxBackward);
}

MEDGYM_REGISTER_BINDINGS(Init);

}  // namespace
}  // namespace medgym::addon
