#include "model/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace medgym::model {

static float full_logp(const float* logits, int64_t V, double tau, int32_t tok) {
  double mx = -std::numeric_limits<double>::infinity();
  for (int64_t k = 0; k < V; ++k) mx = std::max(mx, static_cast<double>(logits[k] / static_cast<float>(tau)));
  double s = 0;
  for (int64_t k = 0; k < V; ++k) s += std::exp(static_cast<double>(logits[k] / static_cast<float>(tau)) - mx);
  return static_cast<float>(static_cast<double>(logits[tok] / static_cast<float>(tau)) - mx - std::log(s));
}

int32_t sample_token(const float* logits, int64_t V, const SampleParams& sp, double u, float* logp,
                     std::vector<double>& p, std::vector<int32_t>& order) {
  auto banned = [&](int64_t k) { return sp.banned && (*sp.banned)[k]; };
  if (sp.temperature <= 0) {
    int32_t best = -1;
    for (int64_t k = 0; k < V; ++k)
      if (!banned(k) && (best < 0 || logits[k] > logits[best])) best = static_cast<int32_t>(k);
    if (best < 0) best = 0;
    *logp = full_logp(logits, V, 1.0, best);
    return best;
  }
  const float tau = static_cast<float>(sp.temperature);
  p.resize(V);
  // One pass of exps relative to the max over ALL ids gives both the sampling weights (allowed ids)
  // and the full-vocabulary normalizer of the reported logp.
  double mx = -std::numeric_limits<double>::infinity(), mx_allowed = mx;
  for (int64_t k = 0; k < V; ++k) {
    const double z = static_cast<double>(logits[k] / tau);
    mx = std::max(mx, z);
    if (!banned(k)) mx_allowed = std::max(mx_allowed, z);
  }
  double total = 0, total_all = 0;
  for (int64_t k = 0; k < V; ++k) {
    const double e = std::isfinite(mx) ? std::exp(static_cast<double>(logits[k] / tau) - mx) : 0.0;
    total_all += e;
    p[k] = banned(k) ? 0.0 : e;
    total += p[k];
  }
  if (!(total > 0) && std::isfinite(mx_allowed)) {  // the allowed ids underflowed against the global max
    total = 0;
    for (int64_t k = 0; k < V; ++k) {
      p[k] = banned(k) ? 0.0 : std::exp(static_cast<double>(logits[k] / tau) - mx_allowed);
      total += p[k];
    }
  }
  int32_t tok = -1;
  if (!(total > 0) || !std::isfinite(total)) {
    tok = 0;
  } else if (sp.top_p < 1.0) {
    order.resize(V);
    for (int64_t k = 0; k < V; ++k) order[k] = static_cast<int32_t>(k);
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    double kept = 0;
    int64_t n = 0;
    while (n < V) {
      kept += p[order[n]];
      ++n;
      if (kept >= sp.top_p * total) break;
    }
    double r = u * kept, acc = 0;
    for (int64_t i = 0; i < n; ++i) {
      acc += p[order[i]];
      if (acc > r) {
        tok = order[i];
        break;
      }
    }
    if (tok < 0) tok = order[n - 1];
  } else {
    double r = u * total, acc = 0;
    int32_t last = -1;
    for (int64_t k = 0; k < V; ++k) {
      if (p[k] <= 0) continue;
      last = static_cast<int32_t>(k);
      acc += p[k];
      if (acc > r) {
        tok = static_cast<int32_t>(k);
        break;
      }
    }
    if (tok < 0) tok = last;
  }
  const double zt = static_cast<double>(logits[tok] / tau);
  *logp = std::isfinite(mx) && total_all > 0 ? static_cast<float>(zt - mx - std::log(total_all))
                                             : full_logp(logits, V, sp.temperature, tok);
  return tok;
}

}  // namespace medgym::model
