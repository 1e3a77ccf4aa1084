// Sampling one token from a logits row (SPEC §1/§7), exactly:
//   temperature == 0: greedy, the lowest id of the largest non-banned logit.
//   otherwise z = logits / τ (float), banned ids get probability 0, p = softmax(z) in double;
//   top_p < 1: ids sorted by p descending (ties: lower id first), keep the shortest prefix whose mass
//   reaches top_p; draw u in [0,1) from the sequence's stream, r = u · (kept mass), and walk the kept
//   ids (in id order when top_p >= 1, in sorted order otherwise) until the running mass exceeds r.
// The reported logp is log_softmax(logits / τ)[token] over the FULL vocabulary (no ban, no top-p;
// τ = 1 when greedy): the distribution SPEC §1 defines and a forward recomputes.
#pragma once
#include <cstdint>
#include <vector>

namespace medgym::model {

struct SampleParams {
  double temperature = 1.0, top_p = 1.0;
  const std::vector<uint8_t>* banned = nullptr;  // per id, 1 = never sampled (nullable)
};

// Returns the token; *logp receives its log-prob as described above. `scratch` is reused storage.
int32_t sample_token(const float* logits, int64_t V, const SampleParams& sp, double u, float* logp,
                     std::vector<double>& scratch, std::vector<int32_t>& order);

}  // namespace medgym::model
