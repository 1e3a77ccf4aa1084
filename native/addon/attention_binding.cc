// attention / attentionBackward / attentionCached (+ Async): thin wrappers over native/cpu/attention.h.
#include <array>
#include <cmath>
#include <string>

#include "addon/args.h"
#include "addon/kv_attention_args.h"
#include "cpu/attention.h"

namespace medgym::addon {
namespace {

constexpr int64_t kMaxDim = int64_t(1) << 31;

struct Dims {
  int64_t B, T, C, H;
};

Dims read_dims(Args& a) {
  Dims d;
  d.B = a.integer("B", 1, kMaxDim);
  d.T = a.integer("T", 1, kMaxDim);
  d.C = a.integer("C", 1, kMaxDim);
  d.H = a.integer("H", 1, kMaxDim);
  if (d.C % d.H != 0)
    a.range_error("Expected `H` to divide `C` (" + std::to_string(d.C) + ") but received " + std::to_string(d.H));
  return d;
}

Napi::Value AttentionForward(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "attention", async);
  const Dims d = read_dims(a);
  auto qkv = a.f32("qkv", checked_mul(a, {d.B, d.T, 3, d.C}));
  auto mask = a.i32_optional("mask", checked_mul(a, {d.B, d.T}));
  auto out = a.f32_out("out", checked_mul(a, {d.B, d.T, d.C}));
  auto lse = a.f32_out("lse", checked_mul(a, {d.B, d.H, d.T}));
  const bool ref = a.boolean("reference", false);
  return a.run(async, [=] {
    (ref ? attention_forward_qkv_ref : attention_forward_qkv)(out.data, lse.data, qkv.data, mask.data, d.B, d.T, d.C,
                                                              d.H);
  });
}

Napi::Value AttentionBackward(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "attentionBackward", async);
  const Dims d = read_dims(a);
  const int64_t n3 = checked_mul(a, {d.B, d.T, 3, d.C}), n = checked_mul(a, {d.B, d.T, d.C});
  auto dout = a.f32("dout", n);
  auto qkv = a.f32("qkv", n3);
  auto out = a.f32("out", n);
  auto lse = a.f32("lse", checked_mul(a, {d.B, d.H, d.T}));
  auto mask = a.i32_optional("mask", checked_mul(a, {d.B, d.T}));
  auto dqkv = a.f32_out("dqkv", n3);
  const bool acc = a.boolean("accumulate", false);
  const bool ref = a.boolean("reference", false);
  return a.run(async, [=] {
    (ref ? attention_backward_qkv_ref : attention_backward_qkv)(dqkv.data, dout.data, qkv.data, out.data, lse.data,
                                                                mask.data, d.B, d.T, d.C, d.H, acc);
  });
}

// Decoding over a KV cache: q [B,Tq,C] are the last Tq positions of a sequence whose Tk keys/values
// sit in k, v [B,capacity,C] (rows 0..Tk-1 used).
Napi::Value AttentionCached(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "attentionCached", async);
  const KvAttentionArgs r = read_kv_attention(a);
  auto mask = a.i32_optional("mask", checked_mul(a, {r.B, r.Tk}));
  return a.run(async, [=] {
    const auto [B, Tq, Tk, S, C, H] = std::array<int64_t, 6>{r.B, r.Tq, r.Tk, r.S, r.C, r.H};
    const int64_t hd = C / H;
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
    (r.reference ? attention_forward_ref : attention_forward)(
        {B, H, Tq, Tk, hd}, {r.out.data, Tq * C, C, hd}, r.lse.data, {r.q.data, Tq * C, C, hd},
        {r.k.data, S * C, C, hd}, {r.v.data, S * C, C, hd}, mask.data, scale);
  });
}

void Init(Napi::Env env, Napi::Object exports) {
  export_sync_async(env, exports, "attention", AttentionForward);
  export_sync_async(env, exports, "attentionBackward", AttentionBackward);
  export_sync_async(env, exports, "attentionCached", AttentionCached);
}

MEDGYM_REGISTER_BINDINGS(Init);

}  // namespace
}  // namespace medgym::addon
