// Continuous-batching generation over per-sequence KV caches (SPEC §7: token in, token out).
//
// A sequence holds every token it has (prompt, appended segments, sampled tokens) and a cache of the
// first `committed` of them. Tokens not yet in the cache (a new prompt, an appended env response, the
// stop token a generate() ended on) are prefilled, batched with other sequences, at the next
// generate(); logits of the last cached position are kept, so sampling resumes without recomputing
// anything. Each sequence draws from its own counter-based stream (rng.h), keyed by
// (seed, step, prompt index, sample index) and its count of sampled tokens, so what it samples does
// not depend on which other sequences share the batch or when they finish (and Model::extend makes
// each row's numbers independent of the batch too, so this holds bit for bit).
//
// Caches are paged (kv_cache.h): fork() gives new sequences that share a prefilled prompt's blocks,
// so the G samples of a GRPO group prefill their prompt once.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/model.h"
#include "model/sampling.h"

namespace medgym::model {

enum class Finish { StopToken = 0, StopString = 1, MaxNewTokens = 2, MaxSeq = 3 };

struct GenerateParams {
  int64_t max_new_tokens = 256;
  double temperature = 1.0, top_p = 1.0;
  std::vector<uint8_t> banned;               // per id
  std::vector<uint8_t> stop;                 // per id
  std::vector<std::string> stop_strings;     // UTF-8
};

struct GenerateOut {
  int64_t id;
  std::vector<int32_t> tokens;
  std::vector<float> logp;
  Finish finish;
};

class Session {
 public:
  Session(std::shared_ptr<Model> model, bool kv_cache, uint64_t seed, std::vector<std::string> specials);
  std::shared_ptr<Model> model() const { return model_; }

  // Checks a new sequence / segment (ids, image count, max_seq); throws std::out_of_range.
  void check_add(const int32_t* tokens, int64_t n, int64_t n_images) const;
  void check_append(int64_t id, const int32_t* tokens, int64_t n, int64_t n_images) const;
  void check_ids(const std::vector<int64_t>& ids, bool distinct) const;

  // Registers sequences (no compute) and prefills them in one batched pass. counters[i] (default 0):
  // draws sequence i's stream already made (earlier turns of a conversation prefilled at once), so its
  // first sampled token uses draw number counters[i].
  std::vector<int64_t> add(const std::vector<std::vector<int32_t>>& tokens, const std::vector<std::vector<uint8_t>>& pixels,
                           const std::vector<std::array<uint64_t, 4>>& keys, const std::vector<uint64_t>& counters = {});
  void append(const std::vector<int64_t>& ids, const std::vector<std::vector<int32_t>>& tokens,
              const std::vector<std::vector<uint8_t>>& pixels);
  // One new sequence per key, each continuing sequence `id` (prefilled first if it has pending
  // tokens): its tokens and images, its KV cache (shared, copy-on-write) and last logits, and its own
  // stream (key; the draw counter goes on from id's). A child computes exactly what a sequence that
  // went through id's calls would, with the child's key: forked right after add(), exactly what add() of the same prompt with
  // that key gives, bit for bit, without prefilling it again. `id` itself goes on.
  std::vector<int64_t> fork(int64_t id, const std::vector<std::array<uint64_t, 4>>& keys);
  std::vector<GenerateOut> generate(const std::vector<int64_t>& ids, const GenerateParams& gp);
  const std::vector<int32_t>& tokens(int64_t id) const;
  void release(int64_t id);
  bool has(int64_t id) const { return seqs_.count(id) != 0; }
  uint64_t seed() const { return seed_; }
  // Weights version the caches were built with (Model::weights_version at creation).
  uint64_t weights_version() const { return version_; }

 private:
  struct Seq {
    std::vector<int32_t> tokens;
    std::vector<uint8_t> pixels;   // all images, in order
    int64_t committed = 0, committed_images = 0, cache_len = 0, length = 0;  // length: expanded positions of all tokens
    KVCache cache;
    std::vector<float> logits;     // of the last cached position (valid when committed == tokens.size())
    uint64_t key = 0, counter = 0;
  };
  // Brings caches up to date with the tokens and keeps each sequence's last logits; or, given
  // `after`, calls after(k, logits) for each ids[k] that had pending tokens (possibly on a pool
  // thread) instead of keeping them.
  void prefill(const std::vector<int64_t>& ids, const std::function<void(size_t, const float*)>& after = {});

  std::shared_ptr<Model> model_;
  bool kv_;
  uint64_t seed_;
  uint64_t version_;
  std::vector<std::string> specials_;
  std::shared_ptr<KVPool> pool_;  // before seqs_: their blocks go back to it
  std::map<int64_t, Seq> seqs_;
  // prefill()'s scratch, reused (no allocation per decode step)
  std::vector<float> logits_;
  std::vector<SeqInput> in_;
  std::vector<size_t> which_;
  std::vector<Seq*> pending_;
  int64_t next_id_ = 0;
};

}  // namespace medgym::model
