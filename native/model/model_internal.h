// Shared between forward.cc and backward.cc (not part of the model's interface).
#pragma once
#include "model/model.h"

namespace medgym::model {

struct Model::Saved {
  Packed pk;
  Acts acts;
  float temperature = 1.0f;
  int64_t tokens_total = 0;
  std::vector<float> prefix_dkv;  // shared-prefix backward scratch (prefix.cc), reused
};

void run_attention(const Config& c, const std::vector<SeqInput>& seqs, const Packed& pk, int64_t layer,
                   const float* qkv, float* atty, float* lse);

}  // namespace medgym::model
