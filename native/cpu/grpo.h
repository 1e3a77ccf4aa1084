// GRPO advantages and per-token clipped policy loss (SPEC §2), with the exact gradient w.r.t. logp.
//
// Advantages (per sequence i of group g, over the members of g in index order, in double):
//   scale "std":  A_i = (r_i - mean_g) / (std_g + 1e-6), std with Bessel's correction (n - 1)
//   scale "none": A_i = r_i - mean_g                                    (Dr. GRPO)
//   a group of one gets A = 0; a group whose rewards are all equal gets exactly A = 0.
// Group ids are arbitrary int32 values; members of a group need not be contiguous.
//
// Per token (everything in double):
//   rho = exp(logp - old_logp), L1 = -A rho, L2 = -A clip(rho, 1 - eps_low, 1 + eps_high),
//   L = max(L1, L2); dual-clip when A < 0 and c > 1: L = min(L, -c A);
//   KL to ref with delta = ref_logp - logp: k1 = -delta, k2 = delta^2 / 2, k3 = exp(delta) - delta - 1;
//   l = L + beta k.
//   dL/dlogp = -A rho where L1 is the branch taken (L1 >= L2, and not dual-clipped), else 0;
//   dk1/dlogp = 1, dk2/dlogp = -delta, dk3/dlogp = 1 - exp(delta).
//
// Mask M [B, T]: a finite non-negative weight per token (0/1 in the usual case; fractional weights
// are accepted and act as token weights everywhere M appears below). Tokens with M = 0 are skipped
// entirely (their logp values are never read, so padding may hold anything) and get dlogp = 0.
//
// Aggregation (S_i = sum_t l M, W_i = sum_t M, W = sum_i W_i):
//   token-mean:               sum_i S_i / W                         (0 when W = 0)
//   seq-mean-token-mean:      mean over rows with W_i > 0 of S_i / W_i (fully masked rows skipped;
//                             0 when every row is fully masked)
//   seq-mean-token-sum:       sum_i S_i / B
//   seq-mean-token-sum-norm:  sum_i S_i / (B T_norm)               (TRL's dr_grpo; T_norm > 0)
// The loss is accumulated in double in a fixed order (tokens of a row in t order, then rows in i
// order) that does not depend on the thread count; rows are computed in parallel.
//
// Metrics (weighted means over the mask, i.e. sum_t,i M x / W; all 0 when W = 0):
//   clip_frac_low    mean of 1[rho < 1 - eps_low  and A < 0]   (tokens whose gradient the clip zeroes)
//   clip_frac_high   mean of 1[rho > 1 + eps_high and A > 0]
//   dual_clip_frac   mean of 1[A < 0, c > 1 and max(L1, L2) > -c A]
//   approx_kl        0.5 * mean of (logp - old_logp)^2         (k2 of the sampling policy)
//   kl               mean of k (the chosen estimator) vs ref; NaN when ref_logp is not given
//   entropy          mean of the given per-token entropies; NaN when not given
//   mask_sum         W
// From the advantage computation: num_groups, equal_reward_groups (groups whose rewards are all
// equal, groups of one included: they carry no learning signal).
#pragma once
#include <cstdint>

namespace medgym {

enum class GrpoScale { Std = 0, None = 1 };
enum class GrpoKl { K1 = 0, K2 = 1, K3 = 2 };
enum class GrpoAgg { TokenMean = 0, SeqMeanTokenMean = 1, SeqMeanTokenSum = 2, SeqMeanTokenSumNorm = 3 };

constexpr double kGrpoStdEps = 1e-6;

struct GrpoOptions {
  double eps_low = 0.2, eps_high = 0.2;
  double dual_clip = 3.0;  // off when <= 1
  double beta = 0.0;       // KL weight; ref_logp may be null when 0
  GrpoKl kl = GrpoKl::K3;
  GrpoAgg agg = GrpoAgg::TokenMean;
  double t_norm = 0.0;  // seq-mean-token-sum-norm divisor; <= 0 means T
};

struct GrpoAdvantageStats {
  int64_t num_groups = 0, equal_reward_groups = 0;
};

struct GrpoMetrics {
  double clip_frac_low = 0, clip_frac_high = 0, dual_clip_frac = 0, approx_kl = 0, kl = 0, entropy = 0,
         mask_sum = 0;
};

// adv[B] from rewards[B] and group ids[B]; returns the group counts.
GrpoAdvantageStats grpo_advantages(const float* rewards, const int32_t* groups, int64_t B, GrpoScale scale,
                                   float* adv);

// Returns the loss; writes dlogp [B, T] (d loss / d logp) and, when non-null, the metrics.
// ref_logp may be null when opt.beta == 0 (then metrics->kl is NaN); entropy [B, T] may be null.
double grpo_loss(const float* logp, const float* old_logp, const float* ref_logp, const float* mask,
                 const float* adv, const float* entropy, int64_t B, int64_t T, const GrpoOptions& opt,
                 float* dlogp, GrpoMetrics* metrics);

// Plain serial references: the formulas above written literally (max/min), double throughout.
GrpoAdvantageStats grpo_advantages_ref(const float* rewards, const int32_t* groups, int64_t B, GrpoScale scale,
                                       float* adv);
double grpo_loss_ref(const float* logp, const float* old_logp, const float* ref_logp, const float* mask,
                     const float* adv, const float* entropy, int64_t B, int64_t T, const GrpoOptions& opt,
                     float* dlogp, GrpoMetrics* metrics);

}  // namespace medgym
