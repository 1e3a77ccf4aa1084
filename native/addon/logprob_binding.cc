// logprob / logprobBackward / logSoftmax (+ Async): thin wrappers over native/cpu/logprob.h.
#include <string>

#include "addon/args.h"
#include "addon/targets.h"
#include "cpu/logprob.h"

namespace medgym::addon {
namespace {

Napi::Value LogprobForward(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "logprob", async);
  const int64_t V = a.integer("vocab", 1, kMaxVocab);
  auto targets = a.i32("targets", -1);
  const int64_t N = static_cast<int64_t>(targets.length);
  auto logits = a.f32("logits", checked_mul(a, {N, V}));
  const float tau = static_cast<float>(a.number("temperature", kMinTemperature, kMaxTemperature, 1.0));
  auto logp = a.f32_out("logp", N);
  auto entropy = a.f32_out_optional("entropy", N);
  auto lse = a.f32_out_optional("lse", N);
  const bool ref = a.boolean("reference", false);
  check_targets(a, "targets", targets, V);
  return a.run(async, [=] {
    (ref ? logprob_forward_ref : logprob_forward)(logits.data, targets.data, N, V, tau, logp.data, entropy.data,
                                                  lse.data);
  });
}

Napi::Value LogprobBackward(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "logprobBackward", async);
  const int64_t V = a.integer("vocab", 1, kMaxVocab);
  auto targets = a.i32("targets", -1);
  const int64_t N = static_cast<int64_t>(targets.length);
  const int64_t NV = checked_mul(a, {N, V});
  auto logits = a.f32("logits", NV);
  const float tau = static_cast<float>(a.number("temperature", kMinTemperature, kMaxTemperature, 1.0));
  auto lse = a.f32_optional("lse", N);
  auto dlogp = a.f32_optional("dlogp", N);
  auto dentropy = a.f32_optional("dentropy", N);
  auto dlogits = a.f32_out("dlogits", NV);
  const bool acc = a.boolean("accumulate", false);
  const bool ref = a.boolean("reference", false);
  check_targets(a, "targets", targets, V);
  return a.run(async, [=] {
    (ref ? logprob_backward_ref : logprob_backward)(logits.data, targets.data, lse.data, dlogp.data, dentropy.data, N,
                                                    V, tau, dlogits.data, acc);
  });
}

Napi::Value LogSoftmax(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "logSoftmax", async);
  const int64_t V = a.integer("vocab", 1, kMaxVocab);
  auto logits = a.f32("logits", -1);
  const int64_t n = static_cast<int64_t>(logits.length);
  if (n % V != 0)
    a.range_error("Expected the length of `logits` to be a multiple of `vocab` (" + std::to_string(V) +
                  ") but received length " + std::to_string(n));
  const float tau = static_cast<float>(a.number("temperature", kMinTemperature, kMaxTemperature, 1.0));
  auto out = a.f32_out("out", n);
  const bool ref = a.boolean("reference", false);
  return a.run(async, [=] { (ref ? log_softmax_forward_ref : log_softmax_forward)(logits.data, n / V, V, tau, out.data); });
}

void Init(Napi::Env env, Napi::Object exports) {
  export_sync_async(env, exports, "logprob", LogprobForward);
  export_sync_async(env, exports, "logprobBackward", LogprobBackward);
  export_sync_async(env, exports, "logSoftmax", LogSoftmax);
}

MEDGYM_REGISTER_BINDINGS(Init);

}  // namespace
}  // namespace medgym::addon
