// The language model of Qwen2-VL / Qwen2.5-VL (Qwen2 decoder with multimodal RoPE) over packed
// ragged rows: scoring (per-token log-probs through the fused head: no rows × vocabulary logits) and
// generation (new rows against each sequence's KV cache, logits of the last row).
//
// Positions come from the caller (src/models/qwen2_vl/rope_index.ts): three ids per row (t, h, w);
// rotary frequency i < hd/2 takes its angle from id mrope_section's axis of i (t for the first
// mrope[0] frequencies, then h, then w), angle = id * theta^(-2i/hd) in float32 as the reference.
#pragma once
#include <cstdint>
#include <vector>

#include "model/qwen/config.h"
#include "model/qwen/weights.h"

namespace medgym::qwen {

// One sequence's keys and values: per layer [cap, KVH*hd] rows (key rows after the rotary).
struct KVRows {
  int64_t len = 0, cap = 0;
  std::vector<std::vector<float>> k, v;
  void reserve(const TextConfig& t, int64_t n);  // room for n rows in all (grows by doubling)
  int64_t bytes() const;
};

struct SeqRows {
  const int32_t* tokens = nullptr;    // n ids; image-token ids take the next row of image_embeds
  int64_t n = 0;
  const int32_t* pos = nullptr;       // [3, n]: t ids, then h ids, then w ids
  const float* image_embeds = nullptr;  // [image tokens of this segment, D], in order
  bool image_rows = true;             // false (sampled tokens): an image-token id embeds as a plain token
  KVRows* cache = nullptr;            // null: attention over these rows only (scoring)
  const int32_t* targets = nullptr;   // scoring: per row the id it predicts, -1 for none
};

// Scoring: logp/entropy per row (0 where the target is -1); temperature τ as SPEC §1.
void text_score(const Config& c, const Weights& w, const std::vector<SeqRows>& seqs, float temperature, float* logp,
                float* entropy);
// Generation: appends every sequence's new rows to its cache and writes the logits [seqs, V] of
// each sequence's last row.
void text_extend(const Config& c, const Weights& w, const std::vector<SeqRows>& seqs, float* logits);

}  // namespace medgym::qwen
