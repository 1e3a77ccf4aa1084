#include "model/params.h"

#include <cmath>

#include "cpu/threadpool.h"
#include "model/rng.h"

namespace medgym::model {

Layout build_layout(const Config& c) {
  Layout lay;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    TensorInfo t;
    t.name = name;
    t.shape = std::move(shape);
    t.size = 1;
    for (int64_t s : t.shape) t.size *= s;
    t.offset = lay.total;
    t.decay = t.shape.size() >= 2;
    lay.total += t.size;
    lay.tensors.push_back(t);
    return t.offset;
  };
  const int64_t d = c.d;
  lay.wte = add("wte.weight", {c.V, d});
  lay.wpe = add("wpe.weight", {c.T, d});
  lay.patch_w = add("patch_embed.weight", {d, c.cpp()});
  lay.patch_b = add("patch_embed.bias", {d});
  lay.patch_pos = add("patch_pos.weight", {c.Np(), d});
  for (int64_t i = 0; i < c.L; ++i) {
    std::string p = "h." + std::to_string(i) + ".";
    LayerOffsets o;
    o.ln1_w = add(p + "ln_1.weight", {d});
    o.ln1_b = add(p + "ln_1.bias", {d});
    o.qkv_w = add(p + "attn.c_attn.weight", {3 * d, d});
    o.qkv_b = add(p + "attn.c_attn.bias", {3 * d});
    o.attn_proj_w = add(p + "attn.c_proj.weight", {d, d});
    o.attn_proj_b = add(p + "attn.c_proj.bias", {d});
    o.ln2_w = add(p + "ln_2.weight", {d});
    o.ln2_b = add(p + "ln_2.bias", {d});
    o.fc_w = add(p + "mlp.c_fc.weight", {4 * d, d});
    o.fc_b = add(p + "mlp.c_fc.bias", {4 * d});
    o.mlp_proj_w = add(p + "mlp.c_proj.weight", {d, 4 * d});
    o.mlp_proj_b = add(p + "mlp.c_proj.bias", {d});
    lay.layers.push_back(o);
  }
  lay.lnf_w = add("ln_f.weight", {d});
  lay.lnf_b = add("ln_f.bias", {d});
  return lay;
}

void init_params(const Config& c, const Layout& layout, uint64_t seed, float* params) {
  const double resid_std = 0.02 / std::sqrt(2.0 * static_cast<double>(c.L));
  for (size_t ti = 0; ti < layout.tensors.size(); ++ti) {
    const TensorInfo& t = layout.tensors[ti];
    float* p = params + t.offset;
    const std::string& n = t.name;
    auto ends_with = [&](const char* s) {
      std::string suf(s);
      return n.size() >= suf.size() && n.compare(n.size() - suf.size(), suf.size(), suf) == 0;
    };
    if (t.shape.size() == 1) {
      const bool ln_weight = ends_with("ln_1.weight") || ends_with("ln_2.weight") || n == "ln_f.weight";
      for (int64_t i = 0; i < t.size; ++i) p[i] = ln_weight ? 1.0f : 0.0f;
      continue;
    }
    // patch_pos departs from GPT-2's 0.02: at 0.02 the patch's position is a small part of its
    // residual next to its content, and learning which grid cell a finding sits in plateaus for
    // hundreds of steps; at 0.2 it starts at once (docs/policy.md, "Init").
    const double std = ends_with("c_proj.weight") ? resid_std : n == "patch_pos.weight" ? 0.2 : 0.02;
    const uint64_t key = stream_key(seed, 0x1417ull, ti, 0);
    // Box-Muller pairs: elements 2k and 2k+1 take the cosine and sine branches of draw pair k.
    parallel_for((t.size + 1) / 2, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) {
        double z0, z1;
        normal_pair(key, static_cast<uint64_t>(k), &z0, &z1);
        p[2 * k] = static_cast<float>(std * z0);
        if (2 * k + 1 < t.size) p[2 * k + 1] = static_cast<float>(std * z1);
      }
    }, 2048);
  }
}

}  // namespace medgym::model
