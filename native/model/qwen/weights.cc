#include "model/qwen/weights.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "cpu/gemm_bf16.h"
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

// Calls fn(stored, checkpoint, n) for runs of n elements that sit at offset `stored` in the stored
// tensor and `checkpoint` in the checkpoint's layout (the query-head permutation; see weights.h).
template <typename Fn>
void for_each_run(const TextConfig& t, const TensorSpec& s, Fn fn) {
  if (is_q(s.name)) {  // rows: head-major [H, hd, (D)]
    const int64_t row = s.shape.size() == 2 ? s.shape[1] : 1;
    for (int64_t h = 0; h < t.H; ++h) fn(h * t.hd * row, hf_head(t, h) * t.hd * row, t.hd * row);
  } else if (is_o(s.name)) {  // columns: [D, H*hd]
    for (int64_t r = 0; r < t.D; ++r)
      for (int64_t h = 0; h < t.H; ++h) fn(r * t.D + h * t.hd, r * t.D + hf_head(t, h) * t.hd, t.hd);
  } else {
    fn(0, 0, s.size);
  }
}

void check_size(const TensorSpec& s, int64_t n) {
  if (n != s.size) throw std::out_of_range("tensor '" + s.name + "' has " + std::to_string(s.size) + " values, got " + std::to_string(n));
}

}  // namespace

std::vector<TensorSpec> Weights::build_table(const Config& c, Dtype dt, int64_t* total, int64_t* total16) {
  std::vector<TensorSpec> out;
  int64_t off = 0, off16 = 0;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    const bool half = dt == Dtype::BF16 && shape.size() >= 2;
    out.push_back({name, std::move(shape), half ? off16 : off, n, half});
    (half ? off16 : off) += n;
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
  *total16 = off16;
  return out;
}

Weights::Weights(const Config& c, Dtype dt, bool bf16_decode) : dtype(dt) {
  if (bf16_decode && dt != Dtype::BF16) throw std::invalid_argument("bf16 decode math needs bf16 weights");
  table = build_table(c, dt, &total, &total16);
  arena.assign(static_cast<size_t>(total), 0.0f);
  arena16.assign(static_cast<size_t>(total16), 0);
  size_t k = 0;
  auto next = [&]() -> const float* {
    if (table[k].bf16) throw std::logic_error("qwen weights: a vector stored in bf16");
    return arena.data() + table[k++].offset;
  };
  auto matrix = [&](Lin& l) {
    const TensorSpec& s = table[k++];
    if (s.bf16) l.w16 = arena16.data() + s.offset;
    else l.w = arena.data() + s.offset;
  };
  auto lin = [&](int64_t out, int64_t in, bool bias) {
    Lin l;
    matrix(l);
    if (bias) l.b = next();
    l.out = out;
    l.in = in;
    return l;
  };
  auto text_lin = [&](int64_t out, int64_t in, bool bias) {  // runs decode rows
    Lin l = lin(out, in, bias);
    l.dot_bf16 = bf16_decode;
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
  embed = text_lin(t.V, t.D, false);
  layers.resize(static_cast<size_t>(t.L));
  for (auto& l : layers) {
    l.in_norm = next();
    l.q = text_lin(t.D, t.D, true);
    l.k = text_lin(t.kv_dim(), t.D, true);
    l.v = text_lin(t.kv_dim(), t.D, true);
    l.o = text_lin(t.D, t.D, false);
    l.post_norm = next();
    l.gate = text_lin(t.I, t.D, false);
    l.up = text_lin(t.I, t.D, false);
    l.down = text_lin(t.D, t.I, false);
  }
  norm = next();
  head = t.tied ? embed : text_lin(t.V, t.D, false);
  if (k != table.size()) throw std::logic_error("qwen weights: table and views disagree");
}

int64_t Weights::find(const std::string& name) const {
  for (size_t i = 0; i < table.size(); ++i)
    if (table[i].name == name) return static_cast<int64_t>(i);
  return -1;
}

void Weights::set_tensor(const Config& c, int64_t index, const float* src, int64_t n) {
  const TensorSpec& s = table.at(static_cast<size_t>(index));
  check_size(s, n);
  for_each_run(c.text, s, [&](int64_t st, int64_t ck, int64_t len) {
    if (s.bf16) fp32_to_bf16(src + ck, arena16.data() + s.offset + st, len);
    else std::memcpy(arena.data() + s.offset + st, src + ck, sizeof(float) * static_cast<size_t>(len));
  });
}

void Weights::set_tensor(const Config& c, int64_t index, const uint16_t* src, int64_t n) {
  const TensorSpec& s = table.at(static_cast<size_t>(index));
  check_size(s, n);
  for_each_run(c.text, s, [&](int64_t st, int64_t ck, int64_t len) {
    if (s.bf16) std::memcpy(arena16.data() + s.offset + st, src + ck, sizeof(uint16_t) * static_cast<size_t>(len));
    else bf16_to_fp32(src + ck, arena.data() + s.offset + st, len);
  });
}

void Weights::get_tensor(const Config& c, int64_t index, float* dst) const {
  const TensorSpec& s = table.at(static_cast<size_t>(index));
  for_each_run(c.text, s, [&](int64_t st, int64_t ck, int64_t len) {
    if (s.bf16) bf16_to_fp32(arena16.data() + s.offset + st, dst + ck, len);
    else std::memcpy(dst + ck, arena.data() + s.offset + st, sizeof(float) * static_cast<size_t>(len));
  });
}

void Weights::embed_row(int64_t id, float* dst) const {
  const int64_t D = embed.in;
  if (embed.w16) bf16_to_fp32(embed.w16 + id * D, dst, D);
  else std::memcpy(dst, embed.w + id * D, sizeof(float) * static_cast<size_t>(D));
}

void Weights::init_random(const Config& c, uint64_t seed) {
  std::vector<float> tmp;
  for (size_t i = 0; i < table.size(); ++i) {
    const TensorSpec& s = table[i];
    if (ends_with(s.name, ".bias") || is_norm(s.name)) {  // vectors: always fp32
      float* dst = arena.data() + s.offset;
      std::fill(dst, dst + s.size, ends_with(s.name, ".bias") ? 0.0f : 1.0f);
      continue;
    }
    // Drawn in checkpoint layout into a float buffer when permuted, else straight into the arena.
    const bool permuted = is_q(s.name) || is_o(s.name);
    if (permuted) tmp.resize(static_cast<size_t>(s.size));
    float* out = permuted ? tmp.data() : s.bf16 ? nullptr : arena.data() + s.offset;
    uint16_t* out16 = !permuted && s.bf16 ? arena16.data() + s.offset : nullptr;
    const uint64_t key = model::mix64(model::mix64(seed) ^ static_cast<uint64_t>(i));
    const int64_t pairs = (s.size + 1) / 2;
    parallel_for(pairs, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        double z[2];
        model::normal_pair(key, static_cast<uint64_t>(p), &z[0], &z[1]);
        for (int64_t e = 2 * p; e < std::min(2 * p + 2, s.size); ++e) {
          const float v = static_cast<float>(0.02 * z[e - 2 * p]);
          if (out16) out16[e] = fp32_to_bf16(v);
          else out[e] = v;
        }
      }
    }, 1 << 14);
    if (permuted) set_tensor(c, static_cast<int64_t>(i), tmp.data(), s.size);
  }
}

}  // namespace medgym::qwen
