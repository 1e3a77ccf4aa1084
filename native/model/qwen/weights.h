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

// How the matrices are stored: float32, or bfloat16 as the checkpoints hold them (half the memory;
// computed with fp32 accumulation by the bf16-weight GEMMs). Norm weights and biases stay float32.
enum class Dtype { F32 = 0, BF16 = 1 };

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0, size = 0;  // elements, into `arena`, or `arena16` when bf16
  bool bf16 = false;
};

struct Lin {  // y = x W^T (+ b); W [out, in] in fp32 (w) or bf16 (w16)
  const float* w = nullptr;
  const uint16_t* w16 = nullptr;
  const float* b = nullptr;
  int64_t out = 0, in = 0;
  // bf16 W only: how the dot path (decode rows) computes. Bf16Dot rounds X to bf16 and multiplies
  // with vdpbf16ps where the CPU has it (twice the products per cycle; PyTorch bf16's numbers).
  bool dot_bf16 = false;
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
  Dtype dtype = Dtype::F32;
  std::vector<TensorSpec> table;
  int64_t total = 0, total16 = 0;  // elements of the fp32 and bf16 arenas
  std::vector<float> arena;
  std::vector<uint16_t> arena16;

  Lin patch_embed;  // [dim, C*T*P*P]: the Conv3d as a Linear on pixel rows
  std::vector<VisionBlock> vblocks;
  const float *merger_norm_w = nullptr, *merger_norm_b = nullptr;
  Lin merger_fc1, merger_fc2;
  Lin embed;  // [V, D] (rows looked up by embed_row)
  std::vector<TextLayer> layers;
  const float* norm = nullptr;
  Lin head;  // [V, D]: embed's when tied

  // The table only (no arena): what a checkpoint must hold, and where each tensor goes with `dt`
  // (bf16: every tensor of two or more dims). total / total16: elements of the two arenas.
  static std::vector<TensorSpec> build_table(const Config& c, Dtype dt, int64_t* total, int64_t* total16);
  // Allocates the arenas (zeros) and the views. bf16_decode (bf16 only): the language model's
  // matrices and the head compute decode rows in Bf16Dot mode (Lin::dot_bf16).
  Weights(const Config& c, Dtype dt, bool bf16_decode = false);
  Weights(const Weights&) = delete;  // the views point into this arena
  Weights& operator=(const Weights&) = delete;
  // Index of a tensor by name; -1 if none.
  int64_t find(const std::string& name) const;
  // Writes tensor `index` from `src` (checkpoint order and layout; `n` must equal its size): fp32
  // values are rounded to bf16 (nearest even) when the tensor is stored in bf16; bf16 bits are
  // widened when it is stored in fp32.
  void set_tensor(const Config& c, int64_t index, const float* src, int64_t n);
  void set_tensor(const Config& c, int64_t index, const uint16_t* src, int64_t n);
  // Reads it back in checkpoint layout (as fp32, exactly).
  void get_tensor(const Config& c, int64_t index, float* dst) const;
  // Token `id`'s embedding as fp32 (D values).
  void embed_row(int64_t id, float* dst) const;
  // Random weights (benchmarks, tests): norm weights 1, biases 0, every other tensor N(0, 0.02). In
  // checkpoint layout, element e of tensor i is 0.02 z with z the (e % 2)th normal of
  // model::normal_pair(mix64(mix64(seed) ^ i), e / 2): a pure function of (seed, i, e) (then rounded
  // to bf16 where stored so).
  void init_random(const Config& c, uint64_t seed);
};

}  // namespace medgym::qwen
