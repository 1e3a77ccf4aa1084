// Token log-probabilities and entropies from logits (SPEC §1): for each row r of logits [N, V]
// (row-major) with target id t = targets[r] and temperature tau > 0,
//   z = logits[r] / tau,   lse = logsumexp(z),   logp[r] = z[t] - lse,
//   entropy[r] = -sum_k p_k log p_k with p = softmax(z).
// A row whose target is negative is ignored: logp 0, entropy 0, and it gets no gradient
// (its dlogits row is zeroed, or left as is with `accumulate`). Targets must be < V.
//
// Gradients used by the backward (g = dlogp[r], h = dentropy[r], u_k = z_k - lse = log p_k):
//   d logp / d logit_k    = (1[k = t] - p_k) / tau
//   d H    / d logit_k    = -p_k (z_k - sum_j p_j z_j) / tau = -p_k (u_k + H) / tau
//
// The forward reads each row from memory once: rows up to 4096 logits take two passes over the
// cached row (max, then the sums), longer rows one online pass on the AVX2 / AVX-512 paths (max,
// sum e^(z-m) and sum e^(z-m)(z-m) per SIMD lane, rescaling a lane when its max grows); the backward reads it twice when `dentropy` is given (the
// first pass recomputes H) and once otherwise. Rows are split over the thread pool statically, and
// every row is computed by one thread with a fixed order, so results do not depend on thread count.
// -inf logits (masked-out vocabulary entries) are supported: they get probability 0, contribute 0
// to the entropy and get gradient 0. A NaN logit makes its row's logp, entropy and lse NaN.
#pragma once
#include <cstdint>

namespace medgym {

// logp [N] is required; entropy [N] and lse [N] (per-row logsumexp of logits/tau, what the backward
// needs) are written when non-null. Ignored rows get logp = entropy = lse = 0.
void logprob_forward(const float* logits, const int32_t* targets, int64_t N, int64_t V, float temperature,
                     float* logp, float* entropy /*nullable*/, float* lse /*nullable*/);

// dlogits [N, V] (+)= dlogp[r] * d logp[r]/d logits + dentropy[r] * d entropy[r]/d logits.
// dlogp / dentropy may be null (treated as 0). lse may be null: it is then recomputed. Overwrites
// dlogits unless `accumulate`.
void logprob_backward(const float* logits, const int32_t* targets, const float* lse, const float* dlogp,
                      const float* dentropy, int64_t N, int64_t V, float temperature, float* dlogits,
                      bool accumulate);

// Full log-softmax: out[r, k] = z_k - logsumexp(z) with z = logits[r] / tau. `out` may alias `logits`.
void log_softmax_forward(const float* logits, int64_t N, int64_t V, float temperature, float* out);

// Plain scalar references (double internally).
void logprob_forward_ref(const float* logits, const int32_t* targets, int64_t N, int64_t V, float temperature,
                         float* logp, float* entropy, float* lse);
void logprob_backward_ref(const float* logits, const int32_t* targets, const float* lse, const float* dlogp,
                          const float* dentropy, int64_t N, int64_t V, float temperature, float* dlogits,
                          bool accumulate);
void log_softmax_forward_ref(const float* logits, int64_t N, int64_t V, float temperature, float* out);

}  // namespace medgym
