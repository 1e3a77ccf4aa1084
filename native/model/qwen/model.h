// A Qwen2-VL / Qwen2.5-VL model in native memory: config and weights, with what generation returns
// (sessions: session.h). The addon (native/addon/qwen_binding.cc) runs one heavy call at a time per
// model (`busy`).
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
  explicit Model(const Config& c, Dtype dt = Dtype::F32, bool bf16_decode = false) : cfg(c), w(c, dt, bf16_decode) {}
  const Config cfg;
  Weights w;
  std::atomic<bool> busy{false};
  // Bumped by every weight write: sessions made before refuse to go on (stale KV caches).
  std::atomic<uint64_t> weights_version{0};

};

}  // namespace medgym::qwen
