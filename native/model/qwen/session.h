// Generation sessions of the Qwen engine: sequences that keep their KV cache between calls, so an
// episode prefills each turn's new tokens once (SPEC §7 sessions, as native/model/generate.h for
// medgym-vlm). Sequences are added (prefilled at once, batched), extended with segments (prefilled,
// batched, at the next generate), forked (the child shares the parent's cache blocks and copies its last logits) and
// generated for (batched decode until each stops).
//
// Positions are the caller's (src/models/qwen2_vl/rope_index.ts): each segment brings its [3, n]
// M-RoPE ids and the position that follows it (`next`); sampled token i sits at next + i on all axes.
// Sampling never picks the image token: an <|image_pad|> has no image behind it when sampled.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "model/qwen/model.h"

namespace medgym::qwen {

struct Segment {
  std::vector<int32_t> tokens;
  std::vector<int32_t> pos;     // [3, n]
  std::vector<float> embeds;    // [image tokens, D]
  int64_t next = 0;             // the position after this segment
};

class Session {
 public:
  explicit Session(std::shared_ptr<Model> m)
      : model_(std::move(m)), version_(model_->weights_version), pool_(new_kv_pool(model_->cfg.text)) {}
  std::shared_ptr<Model> model() const { return model_; }
  bool fresh() const { return version_ == model_->weights_version; }
  bool has(int64_t id) const { return seqs_.count(id) != 0; }

  // counters[i] (default 0): draws sequence i's stream already made (earlier turns of a conversation
  // prefilled at once), so its first sampled token uses draw number counters[i].
  std::vector<int64_t> add(std::vector<Segment> segs, const std::vector<uint64_t>& keys, const std::vector<uint64_t>& counters = {});
  // Queued; prefilled (batched) by the next generate() or fork() of the sequence.
  void append(const std::vector<int64_t>& ids, std::vector<Segment> segs);
  // One child per key continuing `id`; a child's draws go on from `id`'s counter.
  std::vector<int64_t> fork(int64_t id, const std::vector<uint64_t>& keys);
  std::vector<GenOut> generate(const std::vector<int64_t>& ids, const GenParams& gp);
  void release(int64_t id) { seqs_.erase(id); }
  // Bytes the session's caches hold (their pool's slabs; blocks shared by forks counted once).
  int64_t kv_bytes() const { return pool_->bytes(); }

 private:
  struct Seq {
    std::vector<Segment> pending;
    KVRows cache{nullptr};  // on the session's pool (add / fork)
    std::vector<float> logits;  // after the last cached row (valid when nothing is pending)
    int64_t next = 0;
    uint64_t key = 0, counter = 0;
  };
  void prefill(const std::vector<int64_t>& ids);

  std::shared_ptr<Model> model_;
  uint64_t version_;
  std::shared_ptr<model::KVPool> pool_;  // the blocks of every sequence's cache
  std::map<int64_t, Seq> seqs_;
  int64_t next_id_ = 0;
};

}  // namespace medgym::qwen
