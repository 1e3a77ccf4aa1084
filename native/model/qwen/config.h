// Qwen2-VL / Qwen2.5-VL configuration as the native engine needs it (parsed and checked in
// src/models/qwen2_vl/config.ts; checked again here, since the addon trusts nothing it is given).
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace medgym::qwen {

struct TextConfig {
  int64_t V = 0, D = 0, I = 0, L = 0, H = 0, KVH = 0, hd = 0;
  double eps = 1e-6, theta = 1e6;
  int64_t mrope[3] = {0, 0, 0};  // rotary frequency pairs taken from the t, h, w position ids
  bool tied = true;
  int64_t rep() const { return H / KVH; }   // query heads per key/value head (GQA)
  int64_t kv_dim() const { return KVH * hd; }
};

struct VisionConfig {
  int64_t depth = 0, dim = 0, heads = 0, mlp = 0, in_ch = 3, patch = 14, merge = 2, temporal = 2, out = 0;
  bool qwen25 = false;           // RMSNorm + SwiGLU blocks, RMSNorm merger, window attention
  int64_t window = 0;            // Qwen2.5-VL window side in pixels
  std::vector<int64_t> full_blocks;  // Qwen2.5-VL blocks with full (per image) attention
  int64_t hd() const { return dim / heads; }
  int64_t patch_len() const { return in_ch * temporal * patch * patch; }  // a pixel row
  int64_t unit() const { return merge * merge; }                           // patches per merged token
  bool is_full(int64_t block) const {
    if (!qwen25) return true;
    for (int64_t b : full_blocks)
      if (b == block) return true;
    return false;
  }
};

struct Config {
  TextConfig text;
  VisionConfig vision;
  int32_t image_token = 0;

  // Throws std::out_of_range naming the field when the engine cannot run the config.
  void validate() const {
    auto need = [](bool ok, const std::string& msg) {
      if (!ok) throw std::out_of_range("invalid qwen config: " + msg);
    };
    const TextConfig& t = text;
    need(t.V >= 1 && t.V <= (1 << 22), "vocab_size must be in [1, 2^22]");
    need(t.D >= 2 && t.D <= 65536, "hidden_size must be in [2, 65536]");
    need(t.I >= 1 && t.I <= (1 << 20), "intermediate_size must be in [1, 2^20]");
    need(t.L >= 1 && t.L <= 512, "num_hidden_layers must be in [1, 512]");
    need(t.H >= 1 && t.KVH >= 1 && t.H % t.KVH == 0, "num_key_value_heads must divide num_attention_heads");
    need(t.hd >= 2 && t.hd % 2 == 0 && t.hd * t.H == t.D, "head_dim must be even and heads * head_dim == hidden_size");
    need(t.mrope[0] >= 0 && t.mrope[1] >= 0 && t.mrope[2] >= 0 && t.mrope[0] + t.mrope[1] + t.mrope[2] == t.hd / 2,
         "mrope_section must sum to head_dim / 2");
    need(t.eps > 0 && t.eps < 1 && t.theta > 1, "rms_norm_eps / rope_theta out of range");
    const VisionConfig& v = vision;
    need(v.depth >= 1 && v.depth <= 256, "vision depth must be in [1, 256]");
    need(v.dim >= 2 && v.dim <= 65536 && v.heads >= 1 && v.dim % v.heads == 0 && v.hd() % 4 == 0,
         "vision heads must divide the vision width, with a head dim divisible by 4");
    need(v.mlp >= 1 && v.mlp <= (1 << 20), "vision MLP width must be in [1, 2^20]");
    need(v.in_ch >= 1 && v.in_ch <= 4 && v.patch >= 1 && v.patch <= 64 && v.merge >= 1 && v.merge <= 8 &&
             v.temporal >= 1 && v.temporal <= 8,
         "vision patch / merge / temporal sizes out of range");
    need(v.out == t.D, "the merger's output width must equal hidden_size");
    if (v.qwen25) {
      need(v.window >= v.patch * v.merge && v.window % (v.patch * v.merge) == 0,
           "window_size must be a multiple of patch_size * spatial_merge_size");
      for (int64_t b : v.full_blocks) need(b >= 0 && b < v.depth, "fullatt_block_indexes must name blocks < depth");
    }
    need(image_token >= 0 && image_token < t.V, "image_token_id must be < vocab_size");
  }
};

}  // namespace medgym::qwen
