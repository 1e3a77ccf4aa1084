// GRPO twins of cpu/grpo.h (SPEC §2).
//  - advantages: one block; each member walks its group's members in index order in double (the
//    CPU's order and operations, no FMA contraction): bit-identical advantages.
//  - loss: (1) one block per row: per-token loss/gradient terms in double, the row sums S_i, W_i and
//    the metric sums by the fixed block tree; (2) one block combines the rows (fixed tree) into the
//    loss, the metrics and the aggregation's denominators; (3) an element-wise pass writes
//    dlogp = dl M / denom, recomputing each token's dl in double (one rounding, as the CPU).
#include <cmath>

#include "cuda/common.cuh"

namespace medgym::cuda {

namespace {

constexpr int kThreads = 256;

// ---- advantages ---------------------------------------------------------------------------------

__global__ void __launch_bounds__(1024) advantages_kernel(const float* r, const int32_t* groups, int64_t B, bool std_scale,
                                                          float* adv, GrpoAdvantageStats* stats) {
  __shared__ long long sh[32];
  long long ng = 0, neq = 0;
  for (int64_t i = threadIdx.x; i < B; i += blockDim.x) {
    const int32_t gi = groups[i];
    int64_t n = 0;
    bool first = true, equal = true;
    float r0 = 0.0f;
    double sum = 0.0;
    for (int64_t j = 0; j < B; ++j) {
      if (groups[j] != gi) continue;
      if (n == 0) r0 = r[j];
      equal = equal && r[j] == r0;
      sum = __dadd_rn(sum, static_cast<double>(r[j]));
      first = first && j >= i;
      ++n;
    }
    if (first) ng += 1, neq += equal;
    if (equal) {  // groups of one included: exactly zero
      adv[i] = 0.0f;
      continue;
    }
    const double mean = __ddiv_rn(sum, static_cast<double>(n));
    double ss = 0.0;
    for (int64_t j = 0; j < B; ++j) {
      if (groups[j] != gi) continue;
      const double d = __dsub_rn(static_cast<double>(r[j]), mean);
      ss = __dadd_rn(ss, __dmul_rn(d, d));
    }
    const double denom =
        std_scale ? __dadd_rn(__dsqrt_rn(__ddiv_rn(ss, static_cast<double>(n - 1))), kGrpoStdEps) : 1.0;
    adv[i] = static_cast<float>(__ddiv_rn(__dsub_rn(static_cast<double>(r[i]), mean), denom));
  }
  ng = block_sum(ng, sh);
  neq = block_sum(neq, sh);
  if (threadIdx.x == 0 && stats) stats->num_groups = ng, stats->equal_reward_groups = neq;
}

// ---- loss ---------------------------------------------------------------------------------------

struct Token {
  double l, dl, lr, k;
  bool low, high, dual;
};

// One token with mask > 0, as grpo_loss of the CPU.
__device__ __forceinline__ Token token_terms(float logp, float old_logp, const float* ref, double A,
                                             const GrpoOptions& o) {
  Token t;
  const double lo = 1.0 - o.eps_low, hi = 1.0 + o.eps_high, c = o.dual_clip;
  t.lr = static_cast<double>(logp) - old_logp;
  const double rho = exp(t.lr);
  t.low = rho < lo && A < 0;
  t.high = rho > hi && A > 0;
  double L = t.low ? -A * lo : t.high ? -A * hi : -A * rho;
  double dL = (t.low || t.high) ? 0.0 : -A * rho;
  t.dual = c > 1.0 && A < 0 && L > -c * A;
  if (t.dual) L = -c * A, dL = 0.0;
  t.l = L, t.dl = dL, t.k = 0.0;
  if (ref) {
    const double delta = static_cast<double>(*ref) - logp;
    double dk;
    switch (o.kl) {
      case GrpoKl::K1: t.k = -delta, dk = 1.0; break;
      case GrpoKl::K2: t.k = 0.5 * delta * delta, dk = -delta; break;
      default: {
        const double e = exp(delta);
        t.k = e - delta - 1.0, dk = 1.0 - e;
      }
    }
    t.l += o.beta * t.k;
    t.dl += o.beta * dk;
  }
  return t;
}

// Per-row sums: [S, W, clip_low, clip_high, dual, approx_kl (Σ M lr²), kl, entropy].
constexpr int kRowStats = 8;

__global__ void __launch_bounds__(kThreads) loss_rows_kernel(const float* logp, const float* old_logp,
                                                             const float* ref_logp, const float* mask, const float* adv,
                                                             const float* entropy, int64_t T, GrpoOptions o,
                                                             double* rows) {
  __shared__ double sh[32];
  const int64_t i = blockIdx.x;
  const double A = adv[i];
  double acc[kRowStats] = {};
  for (int64_t t = threadIdx.x; t < T; t += kThreads) {
    const int64_t j = i * T + t;
    const double M = mask[j];
    acc[1] += M;
    if (!(M > 0)) continue;
    const Token k = token_terms(logp[j], old_logp[j], ref_logp ? ref_logp + j : nullptr, A, o);
    acc[0] += k.l * M;
    acc[2] += k.low ? M : 0.0;
    acc[3] += k.high ? M : 0.0;
    acc[4] += k.dual ? M : 0.0;
    acc[5] += M * k.lr * k.lr;
    acc[6] += M * k.k;
    if (entropy) acc[7] += M * entropy[j];
  }
#pragma unroll
  for (int q = 0; q < kRowStats; ++q) {
    const double v = block_sum(acc[q], sh);
    if (threadIdx.x == 0) rows[i * kRowStats + q] = v;
  }
}

// Combines the rows: result (loss, metrics) and den[0] = W, den[1] = rows with W_i > 0.
__global__ void __launch_bounds__(1024) loss_total_kernel(const double* rows, int64_t B, int64_t T, GrpoOptions o,
                                                          bool has_ref, bool has_ent, GrpoLossResult* result,
                                                          double* den) {
  __shared__ double sh[32];
  double tot[kRowStats] = {}, seq_mean = 0.0, valid = 0.0;
  for (int64_t i = threadIdx.x; i < B; i += blockDim.x) {
    const double* r = rows + i * kRowStats;
    for (int q = 0; q < kRowStats; ++q) tot[q] += r[q];
    if (r[1] > 0) seq_mean += r[0] / r[1], valid += 1.0;
  }
  for (int q = 0; q < kRowStats; ++q) tot[q] = block_sum(tot[q], sh);
  seq_mean = block_sum(seq_mean, sh);
  valid = block_sum(valid, sh);
  if (threadIdx.x != 0) return;
  const double W = tot[1];
  double loss;
  switch (o.agg) {
    case GrpoAgg::TokenMean: loss = W > 0 ? tot[0] / W : 0.0; break;
    case GrpoAgg::SeqMeanTokenMean: loss = valid > 0 ? seq_mean / valid : 0.0; break;
    case GrpoAgg::SeqMeanTokenSum: loss = tot[0] / static_cast<double>(B); break;
    default: loss = tot[0] / (static_cast<double>(B) * (o.t_norm > 0 ? o.t_norm : static_cast<double>(T)));
  }
  const double inv = W > 0 ? 1.0 / W : 0.0;
  GrpoLossResult res;
  res.loss = loss;
  res.metrics.clip_frac_low = tot[2] * inv;
  res.metrics.clip_frac_high = tot[3] * inv;
  res.metrics.dual_clip_frac = tot[4] * inv;
  res.metrics.approx_kl = 0.5 * tot[5] * inv;
  res.metrics.kl = has_ref ? tot[6] * inv : NAN;
  res.metrics.entropy = has_ent ? tot[7] * inv : NAN;
  res.metrics.mask_sum = W;
  *result = res;
  den[0] = W;
  den[1] = valid;
}

__global__ void loss_grad_kernel(const float* logp, const float* old_logp, const float* ref_logp, const float* mask,
                                 const float* adv, const double* rows, const double* den, int64_t B, int64_t T,
                                 GrpoOptions o, float* dlogp) {
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < B * T; j += int64_t(gridDim.x) * blockDim.x) {
    const double M = mask[j];
    if (!(M > 0)) {
      dlogp[j] = 0.0f;
      continue;
    }
    const int64_t i = j / T;
    double denom;
    switch (o.agg) {
      case GrpoAgg::TokenMean: denom = den[0]; break;
      case GrpoAgg::SeqMeanTokenMean: denom = rows[i * kRowStats + 1] * den[1]; break;
      case GrpoAgg::SeqMeanTokenSum: denom = static_cast<double>(B); break;
      default: denom = static_cast<double>(B) * (o.t_norm > 0 ? o.t_norm : static_cast<double>(T));
    }
    const Token k = token_terms(logp[j], old_logp[j], ref_logp ? ref_logp + j : nullptr, adv[i], o);
    dlogp[j] = denom > 0 ? static_cast<float>(k.dl * M / denom) : 0.0f;
  }
}

}  // namespace

void grpo_advantages(const float* rewards, const int32_t* groups, int64_t B, GrpoScale scale, float* adv,
                     GrpoAdvantageStats* stats, Stream s) {
  advantages_kernel<<<1, 1024, 0, to_stream(s)>>>(rewards, groups, B, scale == GrpoScale::Std, adv, stats);
  check_launch("grpo_advantages kernel");
}

void grpo_loss(const float* logp, const float* old_logp, const float* ref_logp, const float* mask, const float* adv,
               const float* entropy, int64_t B, int64_t T, const GrpoOptions& opt, float* dlogp,
               GrpoLossResult* result, Stream s) {
  const cudaStream_t st = to_stream(s);
  if (B > 0x7fffffff) throw std::invalid_argument("grpo_loss: B too large");
  Scratch scratch((size_t(std::max<int64_t>(B, 1)) * kRowStats + 2) * sizeof(double), st);
  double* rows = scratch.as<double>();
  double* den = rows + std::max<int64_t>(B, 1) * kRowStats;
  if (B > 0) {
    loss_rows_kernel<<<static_cast<unsigned>(B), kThreads, 0, st>>>(logp, old_logp, ref_logp, mask, adv, entropy, T,
                                                                     opt, rows);
    check_launch("grpo_loss kernel (rows)");
  }
  loss_total_kernel<<<1, 1024, 0, st>>>(rows, B, T, opt, ref_logp != nullptr, entropy != nullptr, result, den);
  check_launch("grpo_loss kernel (total)");
  if (B * T > 0) {
    loss_grad_kernel<<<grid_for(B * T, kThreads, int64_t(sm_count()) * 8), kThreads, 0, st>>>(
        logp, old_logp, ref_logp, mask, adv, rows, den, B, T, opt, dlogp);
    check_launch("grpo_loss kernel (gradient)");
  }
}

}  // namespace medgym::cuda
