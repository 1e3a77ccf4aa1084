#include "model/qwen/weights.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "cpu/threadpool.h"
#include "model/rng.h"

namespace medgym::qwen {

namespace {

bool is_q(const std::string& n) { return n.find("self_attn.q_proj.") != std::string::npos; }
bool is_o(const std::string& n) { return n.find("self_attn.o_proj.weight") != std::string::npos; }
bool ends_with(const std::string& n, const std::string& tail) {
  return n.size() >= tail.size() && n.compare(n.size() - tail.size(), tail.size(), tail) == 0;
}
bool is_norm(const std::string& n) { return ends_with(n, ".weight") && (n.find("norm") != std::string::npos || n.find("ln_q") != std::string::npos); }

// Stored head s = r*KVH + g  <->  HF head h = g*rep + r.
int64_t hf_head(const TextConfig& t, int64_t s) {
  const int64_t r = s / t.KVH, g = s % t.KVH;
  return g * t.rep() + r;
}

}  // namespace

std::vector<TensorSpec> Weights::build_table(const Config& c, int64_t* total) {
  std::vector<TensorSpec> out;
  int64_t off = 0;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    out.push_back({name, std::move(shape), off, n});
    off += n;
  };
  const VisionConfig& v = c.vision;
  const TextConfig& t = c.text;
  const bool ln = !v.qwen25;
  add("visual.patch_embed.proj.weight", {v.dim, v.in_ch, v.temporal, v.patch, v.patch});
  for (int64_t i = 0; i < v.depth; ++i) {
    const std::string b = "visual.blocks." + std::to_string(i) + ".";
    add(b + "norm1.weight", {v.dim});
    if (ln) add(b + "norm1.bias", {v.dim});
    add(b + "norm2.weight", {v.dim});
    if (ln) add(b + "norm2.bias", {v.dim});
    add(b + "attn.qkv.weight", {3 * v.dim, v.dim});
    add(b + "attn.qkv.bias", {3 * v.dim});
    add(b + "attn.proj.weight", {v.dim, v.dim});
    add(b + "attn.proj.bias", {v.dim});
    if (ln) {
      add(b + "mlp.fc1.weight", {v.mlp, v.dim});
      add(b + "mlp.fc1.bias", {v.mlp});
      add(b + "mlp.fc2.weight", {v.dim, v.mlp});
      add(b + "mlp.fc2.bias", {v.dim});
    } else {
      for (const char* p : {"gate_proj", "up_proj"}) {
        add(b + "mlp." + p + ".weight", {v.mlp, v.dim});
        add(b + "mlp." + p + ".bias", {v.mlp});
      }
      add(b + "mlp.down_proj.weight", {v.dim, v.mlp});
      add(b + "mlp.down_proj.bias", {v.dim});
    }
  }
  const int64_t merged = v.dim * v.unit();
  add("visual.merger.ln_q.weight", {v.dim});
  if (ln) add("visual.merger.ln_q.bias", {v.dim});
  add("visual.merger.mlp.0.weight", {merged, merged});
  add("visual.merger.mlp.0.bias", {merged});
  add("visual.merger.mlp.2.weight", {v.out, merged});
  add("visual.merger.mlp.2.bias", {v.out});
  add("model.embed_tokens.weight", {t.V, t.D});
  const int64_t kv = t.kv_dim();
  for (int64_t i = 0; i < t.L; ++i) {
    const std::string l = "model.layers." + std::to_string(i) + ".";
    add(l + "input_layernorm.weight", {t.D});
    add(l + "self_attn.q_proj.weight", {t.D, t.D});
    add(l + "self_attn.q_proj.bias", {t.D});
    add(l + "self_attn.k_proj.weight", {kv, t.D});
    add(l + "self_attn.k_proj.bias", {kv});
    add(l + "self_attn.v_proj.weight", {kv, t.D});
    add(l + "self_attn.v_proj.bias", {kv});
    add(l + "self_attn.o_proj.weight", {t.D, t.D});
    add(l + "post_attention_layernorm.weight", {t.D});
    add(l + "mlp.gate_proj.weight", {t.I, t.D});
    add(l + "mlp.up_proj.weight", {t.I, t.D});
    add(l + "mlp.down_proj.weight", {t.D, t.I});
  }
  add("model.norm.weight", {t.D});
  if (!t.tied) add("lm_head.weight", {t.V, t.D});
  *total = off;
  return out;
}

Weights::Weights(const Config& c) {
  table = build_table(c, &total);
  arena.assign(static_cast<size_t>(total), 0.0f);
  size_t k = 0;
  auto next = [&]() -> const float* { return arena.data() + table[k++].offset; };
  auto lin = [&](int64_t out, int64_t in, bool bias) {
    Lin l;
    l.w = next();
    if (bias) l.b = next();
    l.out = out;
    l.in = in;
    return l;
  };
  const VisionConfig& v = c.vision;
  const TextConfig& t = c.text;
  const bool ln = !v.qwen25;
  patch_embed = lin(v.dim, v.patch_len(), false);
  vblocks.resize(static_cast<size_t>(v.depth));
  for (auto& b : vblocks) {
    b.norm1_w = next();
    if (ln) b.norm1_b = next();
    b.norm2_w = next();
    if (ln) b.norm2_b = next();
    b.qkv = lin(3 * v.dim, v.dim, true);
    b.proj = lin(v.dim, v.dim, true);
    if (ln) {
      b.fc1 = lin(v.mlp, v.dim, true);
      b.fc2 = lin(v.dim, v.mlp, true);
    } else {
      b.gate = lin(v.mlp, v.dim, true);
      b.up = lin(v.mlp, v.dim, true);
      b.down = lin(v.dim, v.mlp, true);
    }
  }
  const int64_t merged = v.dim * v.unit();
  merger_norm_w = next();
  if (ln) merger_norm_b = next();
  merger_fc1 = lin(merged, merged, true);
  merger_fc2 = lin(v.out, merged, true);
  embed = next();
  layers.resize(static_cast<size_t>(t.L));
  for (auto& l : layers) {
    l.in_norm = next();
    l.q = lin(t.D, t.D, true);
    l.k = lin(t.kv_dim(), t.D, true);
    l.v = lin(t.kv_dim(), t.D, true);
    l.o = lin(t.D, t.D, false);
    l.post_norm = next();
    l.gate = lin(t.I, t.D, false);
    l.up = lin(t.I, t.D, false);
    l.down = lin(t.D, t.I, false);
  }
  norm = next();
  head = t.tied ? embed : next();
  if (k != table.size()) throw std::logic_error("qwen weights: table and views disagree");
}

int64_t Weights::find(const std::string& name) const {
  for (size_t i = 0; i < table.size(); ++i)
    if (table[i].name == name) return static_cast<int64_t>(i);
  return -1;
}

void Weights::set_tensor(const Config& c, int64_t index, const float* src, int64_t n) {
  const TensorSpec& s = table.at(static_cast<size_t>(index));
  if (n != s.size) throw std::out_of_range("tensor '" + s.name + "' has " + std::to_string(s.size) + " values, got " + std::to_string(n));
  float* dst = arena.data() + s.offset;
  const TextConfig& t = c.text;
  if (is_q(s.name)) {  // rows: head-major [H, hd, (D)]
    const int64_t row = s.shape.size() == 2 ? s.shape[1] : 1;
    for (int64_t h = 0; h < t.H; ++h)
      std::memcpy(dst + h * t.hd * row, src + hf_head(t, h) * t.hd * row, sizeof(float) * static_cast<size_t>(t.hd * row));
  } else if (is_o(s.name)) {  // columns: [D, H*hd]
    for (int64_t r = 0; r < t.D; ++r)
      for (int64_t h = 0; h < t.H; ++h)
        std::memcpy(dst + r * t.D + h * t.hd, src + r * t.D + hf_head(t, h) * t.hd, sizeof(float) * static_cast<size_t>(t.hd));
  } else {
    std::memcpy(dst, src, sizeof(float) * static_cast<size_t>(n));
  }
}

void Weights::get_tensor(const Config& c, int64_t index, float* dst) const {
  const TensorSpec& s = table.at(static_cast<size_t>(index));
  const float* src = arena.data() + s.offset;
  const TextConfig& t = c.text;
  if (is_q(s.name)) {
    const int64_t row = s.shape.size() == 2 ? s.shape[1] : 1;
    for (int64_t h = 0; h < t.H; ++h)
      std::memcpy(dst + hf_head(t, h) * t.hd * row, src + h * t.hd * row, sizeof(float) * static_cast<size_t>(t.hd * row));
  } else if (is_o(s.name)) {
    for (int64_t r = 0; r < t.D; ++r)
      for (int64_t h = 0; h < t.H; ++h)
        std::memcpy(dst + r * t.D + hf_head(t, h) * t.hd, src + r * t.D + h * t.hd, sizeof(float) * static_cast<size_t>(t.hd));
  } else {
    std::memcpy(dst, src, sizeof(float) * static_cast<size_t>(s.size));
  }
}

void Weights::init_random(const Config& c, uint64_t seed) {
  std::vector<float> tmp;
  for (size_t i = 0; i < table.size(); ++i) {
    const TensorSpec& s = table[i];
    float* dst = arena.data() + s.offset;
    if (ends_with(s.name, ".bias") || is_norm(s.name)) {
      std::fill(dst, dst + s.size, ends_with(s.name, ".bias") ? 0.0f : 1.0f);
      continue;
    }
    const bool permuted = is_q(s.name) || is_o(s.name);  // drawn in checkpoint layout, then stored
    if (permuted) tmp.resize(static_cast<size_t>(s.size));
    float* out = permuted ? tmp.data() : dst;
    const uint64_t key = model::mix64(model::mix64(seed) ^ static_cast<uint64_t>(i));
    const int64_t pairs = (s.size + 1) / 2;
    parallel_for(pairs, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        double z0, z1;
        model::normal_pair(key, static_cast<uint64_t>(p), &z0, &z1);
        out[2 * p] = static_cast<float>(0.02 * z0);
        if (2 * p + 1 < s.size) out[2 * p + 1] = static_cast<float>(0.02 * z1);
      }
    }, 1 << 14);
    if (permuted) set_tensor(c, static_cast<int64_t>(i), tmp.data(), s.size);
  }
}

}  // namespace medgym::qwen
