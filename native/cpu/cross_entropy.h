// SFT cross-entropy over logits [N, V] (row-major) with target ids [N]; a negative target (-1, or
// -100 as in PyTorch) ignores its row. With z = logits / tau (tau = 1 for plain SFT):
//   loss_r = lse(z_r) - z_r[t_r] = -logp_r        (the log-prob kernel of logprob.h)
//   reduction "mean": sum_r loss_r / count,  "sum": sum_r loss_r,  count = rows with t_r >= 0.
// The sum is accumulated in double in row order (independent of the thread count). With count = 0,
// "mean" gives loss 0 and zero gradients (never NaN).
// Backward: dlogits[r, k] (+)= dloss * w * (p_k - 1[k = t_r]) / tau, w = 1/count ("mean") or 1.
#pragma once
#include <cstdint>

namespace medgym {

enum class CeReduction { Mean = 0, Sum = 1 };

struct CrossEntropyResult {
  double loss = 0;
  int64_t count = 0;  // non-ignored rows
};

// lse [N] (nullable) receives the per-row logsumexp for the backward.
CrossEntropyResult cross_entropy_forward(const float* logits, const int32_t* targets, int64_t N, int64_t V,
                                         float temperature, CeReduction reduction, float* lse /*nullable*/);

// dloss: the upstream gradient of the (reduced) loss, usually 1. lse may be null (recomputed).
void cross_entropy_backward(const float* logits, const int32_t* targets, const float* lse, int64_t N, int64_t V,
                            float temperature, CeReduction reduction, float dloss, float* dlogits,
                            bool accumulate);

// Plain references (double internally).
CrossEntropyResult cross_entropy_forward_ref(const float* logits, const int32_t* targets, int64_t N, int64_t V,
                                             float temperature, CeReduction reduction, float* lse);
void cross_entropy_backward_ref(const float* logits, const int32_t* targets, const float* lse, int64_t N,
                                int64_t V, float temperature, CeReduction reduction, float dloss,
                                float* dlogits, bool accumulate);

}  // namespace medgym
