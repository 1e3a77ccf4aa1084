// The plain references of the fused linear log-prob head (fused_linear_logprob.h): every row's
// logits in double, then log-softmax, entropy and their gradients. Slow; for tests.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/fused_linear_logprob.h"

namespace medgym {

namespace {
// z[k] = (h_i . W_k) / tau in double; returns lse and fills p.
double ref_row(const float* hi, const float* W, int64_t d, int64_t V, double tau, std::vector<double>& z,
               std::vector<double>& p) {
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t k = 0; k < V; ++k) {
    double acc = 0;
    for (int64_t j = 0; j < d; ++j) acc += static_cast<double>(hi[j]) * W[k * d + j];
    z[k] = acc / tau;
    m = std::max(m, z[k]);
  }
  double s = 0;
  for (int64_t k = 0; k < V; ++k) s += std::exp(z[k] - m);
  const double l = m + std::log(s);
  for (int64_t k = 0; k < V; ++k) p[k] = std::exp(z[k] - l);
  return l;
}
}  // namespace

void fused_linear_logprob_forward_ref(const float* h, const float* W, const int32_t* targets, int64_t N,
                                      int64_t d, int64_t V, float temperature, float* logp, float* entropy,
                                      float* lse) {
  std::vector<double> z(V), p(V);
  for (int64_t i = 0; i < N; ++i) {
    if (targets[i] < 0) {
      logp[i] = 0;
      if (entropy) entropy[i] = 0;
      if (lse) lse[i] = 0;
      continue;
    }
    double l = ref_row(h + i * d, W, d, V, temperature, z, p);
    double H = 0;
    for (int64_t k = 0; k < V; ++k) H += p[k] * (l - z[k]);
    logp[i] = static_cast<float>(z[targets[i]] - l);
    if (entropy) entropy[i] = static_cast<float>(H);
    if (lse) lse[i] = static_cast<float>(l);
  }
}

void fused_linear_logprob_backward_ref(const float* h, const float* W, const int32_t* targets,
                                       const float* dlogp, const float* dentropy, int64_t N, int64_t d,
                                       int64_t V, float temperature, float* dh, float* dW, bool accumulate_dh) {
  std::vector<double> z(V), p(V), dl(V), dhr(d), dWacc(static_cast<size_t>(V * d), 0.0);
  const double tau = temperature;
  for (int64_t i = 0; i < N; ++i) {
    float* dhi = dh + i * d;
    if (targets[i] < 0) {
      if (!accumulate_dh) std::fill(dhi, dhi + d, 0.0f);
      continue;
    }
    const float* hi = h + i * d;
    double l = ref_row(hi, W, d, V, tau, z, p);
    double Ez = 0;
    for (int64_t k = 0; k < V; ++k) Ez += p[k] * z[k];
    const double g = dlogp ? dlogp[i] : 0.0, c = dentropy ? dentropy[i] : 0.0;
    (void)l;
    for (int64_t k = 0; k < V; ++k) dl[k] = (g * ((k == targets[i]) - p[k]) - c * p[k] * (z[k] - Ez)) / tau;
    for (int64_t j = 0; j < d; ++j) dhr[j] = 0;
    for (int64_t k = 0; k < V; ++k)
      for (int64_t j = 0; j < d; ++j) {
        dhr[j] += dl[k] * W[k * d + j];
        dWacc[k * d + j] += dl[k] * hi[j];
      }
    for (int64_t j = 0; j < d; ++j) dhi[j] = static_cast<float>((accumulate_dh ? dhi[j] : 0.0) + dhr[j]);
  }
  for (int64_t k = 0; k < V * d; ++k) dW[k] = static_cast<float>(dW[k] + dWacc[k]);
}

}  // namespace medgym
