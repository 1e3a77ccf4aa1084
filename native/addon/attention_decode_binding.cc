// attentionDecode (+ Async): thin wrapper over native/cpu/attention_decode.h (KV-cache decode step).
#include <cmath>
#include <string>
#include <vector>

#include "addon/args.h"
#include "cpu/attention_decode.h"
#include "cpu/threadpool.h"

namespace medgym::addon {
namespace {

constexpr int64_t kMaxDim = int64_t(1) << 31;

// q [B,Tq,C]; k, v [B,capacity,C] (rows 0..Tk-1 used); out [B,Tq,C]; lse [B,H,Tq] optional.
Napi::Value AttentionDecode(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "attentionDecode");
  const int64_t B = a.integer("B", 1, kMaxDim), Tq = a.integer("Tq", 1, kMaxDim);
  const int64_t Tk = a.integer("Tk", Tq, kMaxDim);
  const int64_t S = a.integer("capacity", Tk, kMaxDim, Tk);
  const int64_t C = a.integer("C", 1, kMaxDim), H = a.integer("H", 1, kMaxDim);
  if (C % H != 0) a.range_error("Expected `H` to divide `C` (" + std::to_string(C) + ") but received " + std::to_string(H));
  checked_mul(a, {H, Tk});
  auto q = a.f32("q", checked_mul(a, {B, Tq, C}));
  auto k = a.f32("k", checked_mul(a, {B, S, C}));
  auto v = a.f32("v", checked_mul(a, {B, S, C}));
  auto out = a.f32("out", checked_mul(a, {B, Tq, C}));
  auto lse = a.f32_optional("lse", checked_mul(a, {B, H, Tq}));
  const bool ref = a.boolean("reference", false);
  return a.run(async, [=] {
    const int64_t hd = C / H;
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
    parallel_for(B, [&](int64_t b0, int64_t b1) {
      std::vector<float> scores(H * Tk);
      for (int64_t b = b0; b < b1; ++b) {
        AttnViewOut o{out.data + b * Tq * C, 0, C, hd};
        AttnView qv{q.data + b * Tq * C, 0, C, hd}, kv{k.data + b * S * C, 0, C, hd}, vv{v.data + b * S * C, 0, C, hd};
        float* l = lse.data ? lse.data + b * H * Tq : nullptr;
        if (ref) attention_decode_ref(H, Tq, Tk, hd, o, l, qv, kv, vv, scale);
        else attention_decode(H, Tq, Tk, hd, o, l, qv, kv, vv, scale, scores.data());
      }
    });
  });
}

void Init(Napi::Env env, Napi::Object exports) { export_sync_async(env, exports, "attentionDecode", AttentionDecode); }

MEDGYM_REGISTER_BINDINGS(Init);

}  // namespace
}  // namespace medgym::addon
