// attentionDecode (+ Async): thin wrapper over native/cpu/attention_decode.h (KV-cache decode step).
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "addon/args.h"
#include "addon/kv_attention_args.h"
#include "cpu/attention_decode.h"
#include "cpu/threadpool.h"

namespace medgym::addon {
namespace {

Napi::Value AttentionDecode(const Napi::CallbackInfo& info, bool async) {
  Args a(info, "attentionDecode", async);
  const KvAttentionArgs r = read_kv_attention(a);
  checked_mul(a, {r.H, r.Tk});  // the per-thread score buffer
  return a.run(async, [=] {
    const auto [B, Tq, Tk, S, C, H] = std::array<int64_t, 6>{r.B, r.Tq, r.Tk, r.S, r.C, r.H};
    const int64_t hd = C / H;
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
    parallel_for(B, [&](int64_t b0, int64_t b1) {
      std::vector<float> scores(H * Tk);
      for (int64_t b = b0; b < b1; ++b) {
        AttnViewOut o{r.out.data + b * Tq * C, 0, C, hd};
        AttnView qv{r.q.data + b * Tq * C, 0, C, hd}, kv{r.k.data + b * S * C, 0, C, hd},
            vv{r.v.data + b * S * C, 0, C, hd};
        float* l = r.lse.data ? r.lse.data + b * H * Tq : nullptr;
        if (r.reference) attention_decode_ref(H, Tq, Tk, hd, o, l, qv, kv, vv, scale);
        else attention_decode(H, Tq, Tk, hd, o, l, qv, kv, vv, scale, scores.data());
      }
    });
  });
}

void Init(Napi::Env env, Napi::Object exports) { export_sync_async(env, exports, "attentionDecode", AttentionDecode); }

MEDGYM_REGISTER_BINDINGS(Init);

}  // namespace
}  // namespace medgym::addon
