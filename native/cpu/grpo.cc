#include "cpu/grpo.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "cpu/threadpool.h"

namespace medgym {

namespace {

// Mean and std of the rewards of one group (members in increasing index order), then its advantages.
template <typename Members>
void group_advantages(const float* r, const Members& idx, size_t n, GrpoScale scale, float* adv,
                      GrpoAdvantageStats* st) {
  st->num_groups += 1;
  bool equal = true;
  for (size_t j = 1; j < n; ++j) equal = equal && r[idx[j]] == r[idx[0]];
  if (equal) {  // includes groups of one: no signal, exactly zero
    st->equal_reward_groups += 1;
    for (size_t j = 0; j < n; ++j) adv[idx[j]] = 0.0f;
    return;
  }
  double sum = 0;
  for (size_t j = 0; j < n; ++j) sum += r[idx[j]];
  const double mean = sum / static_cast<double>(n);
  double ss = 0;
  for (size_t j = 0; j < n; ++j) ss += (r[idx[j]] - mean) * (r[idx[j]] - mean);
  const double denom = scale == GrpoScale::Std ? std::sqrt(ss / static_cast<double>(n - 1)) + kGrpoStdEps : 1.0;
  for (size_t j = 0; j < n; ++j) adv[idx[j]] = static_cast<float>((r[idx[j]] - mean) / denom);
}

// Per-row sums, combined in row order afterwards.
struct RowAcc {
  double loss = 0, clip_low = 0, clip_high = 0, dual = 0, approx_kl = 0, kl = 0, ent = 0;
};

// The denominator of row i's loss terms for each aggregation (0: the row does not contribute), and
// the row weights it needs: W_i = sum_t M, W = sum_i W_i, rows with W_i > 0.
struct Agg {
  std::vector<double> row_w;  // W_i
  double w = 0;               // W
  int64_t valid_rows = 0;
};

Agg mask_sums(const float* mask, int64_t B, int64_t T) {
  Agg g;
  g.row_w.assign(B, 0.0);
  for (int64_t i = 0; i < B; ++i) {
    double s = 0;
    for (int64_t t = 0; t < T; ++t) s += mask[i * T + t];
    g.row_w[i] = s;
    g.w += s;
    g.valid_rows += s > 0;
  }
  return g;
}

double row_denominator(const Agg& g, int64_t i, int64_t B, int64_t T, const GrpoOptions& opt) {
  switch (opt.agg) {
    case GrpoAgg::TokenMean: return g.w;
    case GrpoAgg::SeqMeanTokenMean: return g.row_w[i] * static_cast<double>(g.valid_rows);
    case GrpoAgg::SeqMeanTokenSum: return static_cast<double>(B);
    case GrpoAgg::SeqMeanTokenSumNorm:
      return static_cast<double>(B) * (opt.t_norm > 0 ? opt.t_norm : static_cast<double>(T));
  }
  return 1.0;
}

// Combines the row sums S_i into the loss in row order, as the aggregation defines it.
double combine_loss(const std::vector<RowAcc>& rows, const Agg& g, int64_t B, int64_t T, const GrpoOptions& opt) {
  if (opt.agg == GrpoAgg::SeqMeanTokenMean) {
    if (g.valid_rows == 0) return 0.0;
    double s = 0;
    for (int64_t i = 0; i < B; ++i)
      if (g.row_w[i] > 0) s += rows[i].loss / g.row_w[i];
    return s / static_cast<double>(g.valid_rows);
  }
  double s = 0;
  for (int64_t i = 0; i < B; ++i) s += rows[i].loss;
  if (opt.agg == GrpoAgg::TokenMean) return g.w > 0 ? s / g.w : 0.0;
  return s / row_denominator(g, 0, B, T, opt);
}

void fill_metrics(const std::vector<RowAcc>& rows, const Agg& g, bool has_ref, bool has_ent, GrpoMetrics* m) {
  RowAcc tot;
  for (const RowAcc& r : rows) {
    tot.clip_low += r.clip_low, tot.clip_high += r.clip_high, tot.dual += r.dual;
    tot.approx_kl += r.approx_kl, tot.kl += r.kl, tot.ent += r.ent;
  }
  const double inv = g.w > 0 ? 1.0 / g.w : 0.0;
  m->clip_frac_low = tot.clip_low * inv;
  m->clip_frac_high = tot.clip_high * inv;
  m->dual_clip_frac = tot.dual * inv;
  m->approx_kl = 0.5 * tot.approx_kl * inv;
  m->kl = has_ref ? tot.kl * inv : NAN;
  m->entropy = has_ent ? tot.ent * inv : NAN;
  m->mask_sum = g.w;
}

// k and dk/dlogp for delta = ref - logp.
inline void kl_term(GrpoKl kind, double delta, double* k, double* dk) {
  switch (kind) {
    case GrpoKl::K1: *k = -delta, *dk = 1.0; return;
    case GrpoKl::K2: *k = 0.5 * delta * delta, *dk = -delta; return;
    case GrpoKl::K3: {
      double e = std::exp(delta);
      *k = e - delta - 1.0, *dk = 1.0 - e;
      return;
    }
  }
}

}  // namespace

GrpoAdvantageStats grpo_advantages(const float* rewards, const int32_t* groups, int64_t B, GrpoScale scale,
                                   float* adv) {
  GrpoAdvantageStats st;
  std::vector<int64_t> order(B);
  std::iota(order.begin(), order.end(), 0);
  // By group id, then by index: each group's members end up contiguous and in index order.
  std::sort(order.begin(), order.end(),
            [&](int64_t a, int64_t b) { return groups[a] != groups[b] ? groups[a] < groups[b] : a < b; });
  for (int64_t s = 0; s < B;) {
    int64_t e = s + 1;
    while (e < B && groups[order[e]] == groups[order[s]]) ++e;
    group_advantages(rewards, order.data() + s, static_cast<size_t>(e - s), scale, adv, &st);
    s = e;
  }
  return st;
}

double grpo_loss(const float* logp, const float* old_logp, const float* ref_logp, const float* mask,
                 const float* adv, const float* entropy, int64_t B, int64_t T, const GrpoOptions& opt,
                 float* dlogp, GrpoMetrics* metrics) {
  const Agg g = mask_sums(mask, B, T);
  std::vector<RowAcc> rows(B);
  const double lo = 1.0 - opt.eps_low, hi = 1.0 + opt.eps_high, c = opt.dual_clip, beta = opt.beta;
  const bool dual = c > 1.0;
  parallel_for(B, [&](int64_t rb, int64_t re) {
    for (int64_t i = rb; i < re; ++i) {
      RowAcc acc;
      const double A = adv[i];
      const double denom = row_denominator(g, i, B, T, opt);
      for (int64_t t = 0; t < T; ++t) {
        const int64_t j = i * T + t;
        const double M = mask[j];
        if (!(M > 0)) {
          dlogp[j] = 0.0f;
          continue;
        }
        const double lr = static_cast<double>(logp[j]) - old_logp[j];
        const double rho = std::exp(lr);
        // max(L1, L2) takes L1 (gradient -A rho) unless the clip makes L2 larger, which happens
        // exactly when rho < lo with A < 0 or rho > hi with A > 0 (then the gradient is 0).
        const bool low = rho < lo && A < 0, high = rho > hi && A > 0;
        double L = low ? -A * lo : high ? -A * hi : -A * rho;
        double dL = (low || high) ? 0.0 : -A * rho;
        if (dual && A < 0 && L > -c * A) {
          L = -c * A;
          dL = 0.0;
          acc.dual += M;
        }
        acc.clip_low += low ? M : 0.0;
        acc.clip_high += high ? M : 0.0;
        acc.approx_kl += M * lr * lr;
        double l = L, dl = dL;
        if (ref_logp) {
          double k = 0, dk = 0;
          kl_term(opt.kl, static_cast<double>(ref_logp[j]) - logp[j], &k, &dk);
          acc.kl += M * k;
          l += beta * k;
          dl += beta * dk;
        }
        if (entropy) acc.ent += M * entropy[j];
        acc.loss += l * M;
        dlogp[j] = denom > 0 ? static_cast<float>(dl * M / denom) : 0.0f;
      }
      rows[i] = acc;
    }
  }, std::max<int64_t>(1, 4096 / std::max<int64_t>(T, 1)));
  if (metrics) fill_metrics(rows, g, ref_logp != nullptr, entropy != nullptr, metrics);
  return combine_loss(rows, g, B, T, opt);
}

GrpoAdvantageStats grpo_advantages_ref(const float* rewards, const int32_t* groups, int64_t B, GrpoScale scale,
                                       float* adv) {
  GrpoAdvantageStats st;
  std::vector<bool> done(B, false);
  for (int64_t i = 0; i < B; ++i) {
    if (done[i]) continue;
    std::vector<int64_t> members;
    for (int64_t j = i; j < B; ++j)
      if (groups[j] == groups[i]) members.push_back(j), done[j] = true;
    group_advantages(rewards, members, members.size(), scale, adv, &st);
  }
  return st;
}

double grpo_loss_ref(const float* logp, const float* old_logp, const float* ref_logp, const float* mask,
                     const float* adv, const float* entropy, int64_t B, int64_t T, const GrpoOptions& opt,
                     float* dlogp, GrpoMetrics* metrics) {
  const Agg g = mask_sums(mask, B, T);
  std::vector<RowAcc> rows(B);
  const double lo = 1.0 - opt.eps_low, hi = 1.0 + opt.eps_high, c = opt.dual_clip;
  for (int64_t i = 0; i < B; ++i) {
    const double A = adv[i];
    for (int64_t t = 0; t < T; ++t) {
      const int64_t j = i * T + t;
      const double M = mask[j];
      if (M == 0) {
        dlogp[j] = 0.0f;
        continue;
      }
      const double rho = std::exp(static_cast<double>(logp[j]) - old_logp[j]);
      const double L1 = -A * rho, L2 = -A * std::min(std::max(rho, lo), hi);
      double L = std::max(L1, L2);
      // d/dlogp of the branch max() took: L1 -> -A rho, L2 -> -A rho inside [lo, hi], else 0.
      double dL = (L1 >= L2 || (rho >= lo && rho <= hi)) ? -A * rho : 0.0;
      if (c > 1 && A < 0 && L > -c * A) {
        L = std::min(L, -c * A);
        dL = 0.0;
        rows[i].dual += M;
      }
      if (rho < lo && A < 0) rows[i].clip_low += M;
      if (rho > hi && A > 0) rows[i].clip_high += M;
      const double d = static_cast<double>(logp[j]) - old_logp[j];
      rows[i].approx_kl += M * d * d;
      double k = 0, dk = 0;
      if (ref_logp) {
        const double delta = static_cast<double>(ref_logp[j]) - logp[j];
        if (opt.kl == GrpoKl::K1) k = -delta, dk = 1;
        if (opt.kl == GrpoKl::K2) k = delta * delta / 2, dk = -delta;
        if (opt.kl == GrpoKl::K3) k = std::exp(delta) - delta - 1, dk = -(std::exp(delta) - 1);
        rows[i].kl += M * k;
      }
      if (entropy) rows[i].ent += M * entropy[j];
      rows[i].loss += (L + opt.beta * k) * M;
      const double denom = row_denominator(g, i, B, T, opt);
      dlogp[j] = denom > 0 ? static_cast<float>((dL + opt.beta * dk) * M / denom) : 0.0f;
    }
  }
  if (metrics) fill_metrics(rows, g, ref_logp != nullptr, entropy != nullptr, metrics);
  return combine_loss(rows, g, B, T, opt);
}

}  // namespace medgym
