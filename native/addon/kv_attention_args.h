// The arguments shared by the KV-cache attention entry points (attentionCached, attentionDecode):
// q [B,Tq,C] are the last Tq of Tk positions whose keys/values sit in k, v [B,capacity,C];
// out [B,Tq,C]; lse [B,H,Tq] optional.
#pragma once
#include <string>

#include "addon/args.h"

namespace medgym::addon {

struct KvAttentionArgs {
  int64_t B, Tq, Tk, S, C, H;
  View<float> q, k, v, out, lse;
  bool reference;
};

inline KvAttentionArgs read_kv_attention(Args& a) {
  constexpr int64_t kMaxDim = int64_t(1) << 31;
  KvAttentionArgs r;
  r.B = a.integer("B", 1, kMaxDim);
  r.Tq = a.integer("Tq", 1, kMaxDim);
  r.Tk = a.integer("Tk", r.Tq, kMaxDim);
  r.S = a.integer("capacity", r.Tk, kMaxDim, r.Tk);
  r.C = a.integer("C", 1, kMaxDim);
  r.H = a.integer("H", 1, kMaxDim);
  if (r.C % r.H != 0)
    a.range_error("Expected `H` to divide `C` (" + std::to_string(r.C) + ") but received " + std::to_string(r.H));
  r.q = a.f32("q", checked_mul(a, {r.B, r.Tq, r.C}));
  r.k = a.f32("k", checked_mul(a, {r.B, r.S, r.C}));
  r.v = a.f32("v", checked_mul(a, {r.B, r.S, r.C}));
  r.out = a.f32_out("out", checked_mul(a, {r.B, r.Tq, r.C}));
  r.lse = a.f32_out_optional("lse", checked_mul(a, {r.B, r.H, r.Tq}));
  r.reference = a.boolean("reference", false);
  return r;
}

}  // namespace medgym::addon
