// The language model of Qwen2-VL / Qwen2.5-VL (Qwen2 decoder with multimodal RoPE) over packed
// ragged rows: scoring (per-token log-probs through the fused head: no rows × vocabulary logits) and
// generation (new rows against each sequence's KV cache, logits of the last row).
//
// Positions come from the caller (src/models/qwen2_vl/rope_index.ts): three ids per row (t, h, w);
// rotary frequency i < hd/2 takes its angle from id mrope_section's axis of i (t for the first
// mrope[0] frequencies, then h, then w), angle = id * theta^(-2i/hd) in float32 as the reference.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "model/kv_cache.h"
#include "model/qwen/config.h"
#include "model/qwen/weights.h"

namespace medgym::qwen {

// A sequence's keys and values: medgym-vlm's paged cache (model/kv_cache.h) with the KV heads as its
// heads, so forks share their parent's blocks instead of copying them; `len` positions written.
struct KVRows {
  explicit KVRows(std::shared_ptr<model::KVPool> pool) : cache(std::move(pool)) {}
  model::KVCache cache;
  int64_t len = 0;
};
// The cache's shape for model::KVCache / KVPool: L layers of KVH heads of hd floats.
model::Config kv_shape(const TextConfig& t);
std::shared_ptr<model::KVPool> new_kv_pool(const TextConfig& t);
// A cache holding `parent`'s rows: its blocks shared, at most 7 rows copied (KVCache::fork).
KVRows fork_rows(const TextConfig& t, const KVRows& parent);

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
