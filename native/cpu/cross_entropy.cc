#include "cpu/cross_entropy.h"

#include <vector>

#include "cpu/logprob.h"

namespace medgym {

namespace {

int64_t count_targets(const int32_t* targets, int64_t N) {
  int64_t c = 0;
  for (int64_t r = 0; r < N; ++r) c += targets[r] >= 0;
  return c;
}

CrossEntropyResult reduce(const std::vector<float>& logp, const int32_t* targets, int64_t N, CeReduction red) {
  CrossEntropyResult res;
  double s = 0;
  for (int64_t r = 0; r < N; ++r)
    if (targets[r] >= 0) s -= logp[r], res.count += 1;
  res.loss = red == CeReduction::Sum ? s : (res.count > 0 ? s / static_cast<double>(res.count) : 0.0);
  return res;
}

// The upstream gradient of each row's logp: -dloss * w for kept rows (ignored rows are skipped by
// the log-prob backward whatever this holds).
std::vector<float> row_grads(const int32_t* targets, int64_t N, CeReduction red, float dloss) {
  const int64_t count = count_targets(targets, N);
  const double w = red == CeReduction::Sum ? 1.0 : (count > 0 ? 1.0 / static_cast<double>(count) : 0.0);
  return std::vector<float>(N, static_cast<float>(-static_cast<double>(dloss) * w));
}

}  // namespace

CrossEntropyResult cross_entropy_forward(const float* logits, const int32_t* targets, int64_t N, int64_t V,
                                         float temperature, CeReduction reduction, float* lse) {
  std::vector<float> logp(N);
  logprob_forward(logits, targets, N, V, temperature, logp.data(), nullptr, lse);
  return reduce(logp, targets, N, reduction);
}

void cross_entropy_backward(const float* logits, const int32_t* targets, const float* lse, int64_t N, int64_t V,
                            float temperature, CeReduction reduction, float dloss, float* dlogits,
                            bool accumulate) {
  std::vector<float> g = row_grads(targets, N, reduction, dloss);
  logprob_backward(logits, targets, lse, g.data(), nullptr, N, V, temperature, dlogits, accumulate);
}

CrossEntropyResult cross_entropy_forward_ref(const float* logits, const int32_t* targets, int64_t N, int64_t V,
                                             float temperature, CeReduction reduction, float* lse) {
  std::vector<float> logp(N);
  logprob_forward_ref(logits, targets, N, V, temperature, logp.data(), nullptr, lse);
  return reduce(logp, targets, N, reduction);
}

void cross_entropy_backward_ref(const float* logits, const int32_t* targets, const float* lse, int64_t N,
                                int64_t V, float temperature, CeReduction reduction, float dloss,
                                float* dlogits, bool accumulate) {
  std::vector<float> g = row_grads(targets, N, reduction, dloss);
  logprob_backward_ref(logits, targets, lse, g.data(), nullptr, N, V, temperature, dlogits, accumulate);
}

}  // namespace medgym
