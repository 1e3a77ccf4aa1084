// A Qwen2-VL / Qwen2.5-VL model in native memory: config, weights, and the calls the addon makes
// (native/addon/qwen_binding.cc). One heavy call at a time per model (`busy`).
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

#include "model/qwen/config.h"
#include "model/qwen/text.h"
#include "model/qwen/vision.h"
#include "model/qwen/weights.h"

namespace medgym::qwen {

struct GenParams {
  int64_t max_new_tokens = 256;
  double temperature = 1.0, top_p = 1.0;  // temperature 0: greedy
  std::vector<uint8_t> stop, banned;      // per id
};

enum class Finish { StopToken = 0, MaxNewTokens = 1 };

struct GenOut {
  std::vector<int32_t> tokens;
  std::vector<float> logp;  // log_softmax(logits / τ)[token] over the full vocabulary (τ = 1 when greedy)
  Finish finish = Finish::MaxNewTokens;
};

class Model {
 public:
  explicit Model(const Config& c) : cfg(c), w(c) {}
  const Config cfg;
  Weights w;
  std::atomic<bool> busy{false};

  // Prefills each prompt (its own cache, positions given), then samples until a stop token or
  // max_new_tokens; generated token i of sequence s sits at position next[s] + i on all three axes.
  // keys[s]: the sequence's counter-based stream (model/rng.h), drawn at its token count.
  std::vector<GenOut> generate(const std::vector<SeqRows>& prompts, const std::vector<int64_t>& next,
                               const std::vector<uint64_t>& keys, const GenParams& gp) const;
};

}  // namespace medgym::qwen
