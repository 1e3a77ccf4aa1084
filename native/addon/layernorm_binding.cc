// layerNorm / layerNormBackward (+ Async): thin wrappers over native/cpu/layernorm.h.
#include "addon/args.h"
#include "cpu/layernorm.h"

namespace medgym::addon {
namespace {

constexpr int64_t kMaxDim = int64_t(1) << 40;

Napi::Value LayerNormForward(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "layerNorm", async);
  const int64_t N = a.integer("N", 1, kMaxDim), C = a.integer("C", 1, kMaxDim);
  const int64_t NC = checked_mul(a, {N, C});
  auto inp = a.f32("input", NC);
  auto w = a.f32("weight", C);
  auto b = a.f32("bias", C);
  const float eps = static_cast<float>(a.number("eps", 1e-30, 1.0, 1e-5));
  auto out = a.f32_out("out", NC);
  auto mean = a.f32_out("mean", N);
  auto rstd = a.f32_out("rstd", N);
  const bool ref = a.boolean("reference", false);
  return a.run(async, [=] {
    (ref ? layernorm_forward_ref : layernorm_forward)(out.data, mean.data, rstd.data, inp.data, w.data, b.data, N, C,
                                                      eps);
  });
}

Napi::Value LayerNormBackward(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "layerNormBackward", async);
  const int64_t N = a.integer("N", 1, kMaxDim), C = a.integer("C", 1, kMaxDim);
  const int64_t NC = checked_mul(a, {N, C});
  auto dout = a.f32("dout", NC);
  auto inp = a.f32("input", NC);
  auto w = a.f32("weight", C);
  auto mean = a.f32("mean", N);
  auto rstd = a.f32("rstd", N);
  auto dinp = a.f32_out("dinput", NC);
  auto dw = a.f32_out("dweight", C);
  auto db = a.f32_out("dbias", C);
  const bool acc = a.boolean("accumulate", false);
  const bool ref = a.boolean("reference", false);
  return a.run(async, [=] {
    (ref ? layernorm_backward_ref : layernorm_backward)(dinp.data, dw.data, db.data, dout.data, inp.data, w.data,
                                                        mean.data, rstd.data, N, C, acc);
  });
}

void Init(Napi::Env env, Napi::Object exports) {
  export_sync_async(env, exports, "layerNorm", LayerNormForward);
  export_sync_async(env, exports, "layerNormBackward", LayerNormBackward);
}

MEDGYM_REGISTER_BINDINGS(Init);

}  // namespace
}  // namespace medgym::addon
