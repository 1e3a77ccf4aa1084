// The tensors of a Qwen2-VL / Qwen2.5-VL checkpoint (Hub names, same order as weightTable in
// src/models/qwen2_vl/weights.ts) over one float32 arena, and typed views of them per layer.
//
// Stored layout departs from the checkpoint in one place: the query heads. HF's head h uses key/value
// head h / rep (rep = H / KVH); here the rows of q_proj (and its bias) and the columns of o_proj are
// permuted so that stored query head r*KVH + g is HF head g*rep + r. The rep heads that share a
// key/value head then lie KVH heads apart and each group of KVH consecutive heads reads the KV cache
// exactly like an MHA model with KVH heads (the decode kernels run on it unchanged). set_tensor
// applies the permutation; get_tensor undoes it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/qwen/config.h"

namespace medgym::qwen {

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0, size = 0;  // floats, into the arena
};

struct Lin {  // y = x W^T (+ b); W [out, in]
  const float* w = nullptr;
  const float* b = nullptr;
  int64_t out = 0, in = 0;
};

struct VisionBlock {
  const float *norm1_w = nullptr, *norm1_b = nullptr, *norm2_w = nullptr, *norm2_b = nullptr;
  Lin qkv, proj;
  Lin fc1, fc2;             // Qwen2-VL
  Lin gate, up, down;       // Qwen2.5-VL
};

struct TextLayer {
  const float *in_norm = nullptr, *post_norm = nullptr;
  Lin q, k, v, o, gate, up, down;
};

struct Weights {
  std::vector<TensorSpec> table;
  int64_t total = 0;
  std::vector<float> arena;

  Lin patch_embed;  // [dim, C*T*P*P]: the Conv3d as a Linear on pixel rows
  std::vector<VisionBlock> vblocks;
  const float *merger_norm_w = nullptr, *merger_norm_b = nullptr;
  Lin merger_fc1, merger_fc2;
  const float* embed = nullptr;  // [V, D]
  std::vector<TextLayer> layers;
  const float* norm = nullptr;
  const float* head = nullptr;  // [V, D]: embed when tied

  // The table only (no arena): what a checkpoint must hold.
  static std::vector<TensorSpec> build_table(const Config& c, int64_t* total);
  // Allocates the arena (zeros) and the views.
  explicit Weights(const Config& c);
  Weights(const Weights&) = delete;  // the views point into this arena
  Weights& operator=(const Weights&) = delete;
  // Index of a tensor by name; -1 if none.
  int64_t find(const std::string& name) const;
  // Writes tensor `index` from `src` (checkpoint order and layout; `n` must equal its size).
  void set_tensor(const Config& c, int64_t index, const float* src, int64_t n);
  // Reads it back in checkpoint layout.
  void get_tensor(const Config& c, int64_t index, float* dst) const;
  // Random weights (benchmarks, tests): norm weights 1, biases 0, every other tensor N(0, 0.02). In
  // checkpoint layout, element e of tensor i is 0.02 z with z the (e % 2)th normal of
  // model::normal_pair(mix64(mix64(seed) ^ i), e / 2): a pure function of (seed, i, e).
  void init_random(const Config& c, uint64_t seed);
};

}  // namespace medgym::qwen
