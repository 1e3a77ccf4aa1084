#include "cpu/fused_linear_logprob.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "cpu/cpu_features.h"
#include "cpu/gemm.h"
#include "cpu/gemm_bf16.h"
#include "cpu/simd.h"
#include "cpu/threadpool.h"

namespace medgym {

namespace {

constexpr int64_t kAlign = 16;  // vocab ranges of threads start on multiples of 16 columns
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Tiling of one call. Vocab split: R rows per macro-block, C columns per vocab chunk, T threads.
// Row split: R rows per block and thread, C = V (full rows), ld = the tile's row stride, T threads.
// comb_rows: rows per macro-block of the vocab split's single-sweep forward_backward, which keeps the
// block's full logits [comb_rows x V] (0: too few rows for the memory bound; it then runs 2 sweeps).
struct Plan {
  FusedLogprobSplit split;
  int64_t rows, chunk, ld, comb_rows;
  int threads;
};

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

Plan make_plan(int64_t N, int64_t d, int64_t V, int threads, FusedLogprobSplit want) {
  Plan p;
  p.threads = std::max(1, threads);
  N = std::max<int64_t>(N, 1);
  FusedLogprobSplit split = want;
  if (split == FusedLogprobSplit::Auto) {
    const bool small = V <= kFusedLogprobRowsMaxVocab &&
                       4 * V * d * static_cast<int64_t>(p.threads) <= kFusedLogprobRowsMaxPartialBytes;
    split = small ? FusedLogprobSplit::Rows : FusedLogprobSplit::Vocab;
  }
  p.split = split;
  if (split == FusedLogprobSplit::Rows) {
    // at least kFusedLogprobRowsMinRows rows per thread (fewer threads for tiny N: fewer dW partials)
    const int64_t tmax = std::max<int64_t>(1, N / kFusedLogprobRowsMinRows);
    p.threads = static_cast<int>(std::min<int64_t>(p.threads, tmax));
    p.ld = round_up(V, kAlign);
    const int64_t fit = kFusedLogprobRowsTileBytes / (4 * p.ld) / 8 * 8;  // rows x V tile kept in L2  // rows x V tile kept in L2
    const int64_t per_thread = (N + p.threads - 1) / p.threads;
    p.rows = std::max<int64_t>(1, std::min({std::max<int64_t>(8, fit), kFusedLogprobRowBlock, per_thread}));
    p.chunk = V;
    p.comb_rows = p.rows;
    return p;
  }
  p.rows = std::max<int64_t>(1, std::min(kFusedLogprobRowBlock, N));
  int64_t units = (V + kAlign - 1) / kAlign;
  int64_t per_thread = (units + p.threads - 1) / p.threads * kAlign;
  p.chunk = std::max(kAlign, std::min(kFusedLogprobVocabChunk, per_thread));
  p.ld = p.chunk;
  // 4 comb_rows V <= N V / 2: the kept logits take at most half of the 1/8-of-unfused budget
  p.comb_rows = std::min(p.rows, N / 8 / 8 * 8);
  if (p.comb_rows < 8) p.comb_rows = 0;
  return p;
}

// The vocab columns [b, e) that thread tid of nthreads owns.
void vocab_range(int64_t V, int tid, int nthreads, int64_t* b, int64_t* e) {
  int64_t ub, ue;
  static_chunk((V + kAlign - 1) / kAlign, tid, nthreads, &ub, &ue);
  *b = std::min(V, ub * kAlign);
  *e = std::min(V, ue * kAlign);
}

template <typename T>
std::unique_ptr<T[]> buffer(int64_t n) {  // uninitialized: pages are touched only when used
  return std::unique_ptr<T[]>(new T[static_cast<size_t>(std::max<int64_t>(n, 1))]);
}

// Online logsumexp state of one row over the columns seen so far: m = max z, s = sum e^{z-m},
// u = sum e^{z-m} (z-m) <= 0.
struct RowStat {
  double s, u;
  float m;
};

// Moves the reference point of `st` up to mc: s' = a s, u' = a (u + (m - mc) s), a = e^{m - mc}.
inline void raise_max(RowStat& st, float mc) {
  if (!(mc > st.m)) return;
  if (st.s > 0) {
    double dm = static_cast<double>(st.m) - mc, a = std::exp(dm);
    st.u = a * (st.u + dm * st.s);
    st.s *= a;
  }
  st.m = mc;
}

// ---- forward: fold one row chunk z[0, n) into st -------------------------------------------------
inline void scan_scalar(const float* z, int64_t n, RowStat& st) {
  float mc = kNegInf;
  for (int64_t i = 0; i < n; ++i) mc = std::max(mc, z[i]);
  raise_max(st, mc);
  float s = 0, u = 0;
  for (int64_t i = 0; i < n; ++i) {
    float x = z[i] - st.m, e = simd::exp_scalar(x);
    s += e;
    u += e * x;
  }
  st.s += s;
  st.u += u;
}

// ---- backward: turn one row chunk of z into dlogits in place ---------------------------------------
// dl = -p (g + c (x + H)),  x = z - lse, p = e^x,  g = dlogp / tau, c = dentropy / tau, H = entropy.
// (The +g at the target column is added by the caller.)
inline void dlogits_scalar(float* z, int64_t n, float lse, float H, float g, float c) {
  for (int64_t i = 0; i < n; ++i) {
    float x = z[i] - lse, p = simd::exp_scalar(x);
    z[i] = -p * (g + c * (x + H));
  }
}

#if MEDGYM_X86
MEDGYM_AVX2 void scan_avx2(const float* z, int64_t n, RowStat& st) {
  __m256 vm = _mm256_set1_ps(kNegInf);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(z + i));
  float mc = simd::hmax256(vm);
  for (int64_t j = i; j < n; ++j) mc = std::max(mc, z[j]);
  raise_max(st, mc);
  const __m256 m = _mm256_set1_ps(st.m);
  __m256 s = _mm256_setzero_ps(), u = _mm256_setzero_ps();
  for (i = 0; i + 8 <= n; i += 8) {
    __m256 x = _mm256_sub_ps(_mm256_loadu_ps(z + i), m), e = simd::exp256(x);
    s = _mm256_add_ps(s, e);
    u = _mm256_fmadd_ps(e, x, u);
  }
  float ss = simd::hsum256(s), uu = simd::hsum256(u);
  for (; i < n; ++i) {
    float x = z[i] - st.m, e = simd::exp_scalar(x);
    ss += e;
    uu += e * x;
  }
  st.s += ss;
  st.u += uu;
}

MEDGYM_AVX2 void dlogits_avx2(float* z, int64_t n, float lse, float H, float g, float c) {
  const __m256 vl = _mm256_set1_ps(lse), vh = _mm256_set1_ps(H), vg = _mm256_set1_ps(g), vc = _mm256_set1_ps(c);
  const __m256 zero = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 x = _mm256_sub_ps(_mm256_loadu_ps(z + i), vl), p = simd::exp256(x);
    __m256 w = _mm256_fmadd_ps(vc, _mm256_add_ps(x, vh), vg);
    _mm256_storeu_ps(z + i, _mm256_fnmadd_ps(p, w, zero));
  }
  dlogits_scalar(z + i, n - i, lse, H, g, c);
}

// GCC 12 reports the _mm512_undefined_ps() inside its own AVX-512 intrinsics as uninitialized (a
// known false positive); silence it for these functions only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
MEDGYM_AVX512 void scan_avx512(const float* z, int64_t n, RowStat& st) {
  const __m512 ninf = _mm512_set1_ps(kNegInf);
  __m512 vm = ninf;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) vm = _mm512_max_ps(vm, _mm512_loadu_ps(z + i));
  const __mmask16 tail = static_cast<__mmask16>((1u << (n - i)) - 1);
  if (n > i) vm = _mm512_max_ps(vm, _mm512_mask_loadu_ps(ninf, tail, z + i));
  raise_max(st, _mm512_reduce_max_ps(vm));
  const __m512 m = _mm512_set1_ps(st.m);
  __m512 s = _mm512_setzero_ps(), u = _mm512_setzero_ps();
  for (i = 0; i + 16 <= n; i += 16) {
    __m512 x = _mm512_sub_ps(_mm512_loadu_ps(z + i), m), e = simd::exp512(x);
    s = _mm512_add_ps(s, e);
    u = _mm512_fmadd_ps(e, x, u);
  }
  if (n > i) {
    __m512 x = _mm512_maskz_sub_ps(tail, _mm512_maskz_loadu_ps(tail, z + i), m);
    __m512 e = _mm512_maskz_mov_ps(tail, simd::exp512(x));
    s = _mm512_add_ps(s, e);
    u = _mm512_fmadd_ps(e, x, u);
  }
  st.s += _mm512_reduce_add_ps(s);
  st.u += _mm512_reduce_add_ps(u);
}

MEDGYM_AVX512 void dlogits_avx512(float* z, int64_t n, float lse, float H, float g, float c) {
  const __m512 vl = _mm512_set1_ps(lse), vh = _mm512_set1_ps(H), vg = _mm512_set1_ps(g), vc = _mm512_set1_ps(c);
  const __m512 zero = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 x = _mm512_sub_ps(_mm512_loadu_ps(z + i), vl), p = simd::exp512(x);
    __m512 w = _mm512_fmadd_ps(vc, _mm512_add_ps(x, vh), vg);
    _mm512_storeu_ps(z + i, _mm512_fnmadd_ps(p, w, zero));
  }
  if (n > i) {
    const __mmask16 tail = static_cast<__mmask16>((1u << (n - i)) - 1);
    __m512 x = _mm512_sub_ps(_mm512_maskz_loadu_ps(tail, z + i), vl), p = simd::exp512(x);
    __m512 w = _mm512_fmadd_ps(vc, _mm512_add_ps(x, vh), vg);
    _mm512_mask_storeu_ps(z + i, tail, _mm512_fnmadd_ps(p, w, zero));
  }
}
#pragma GCC diagnostic pop
#endif

using ScanFn = void (*)(const float*, int64_t, RowStat&);
using DlogitsFn = void (*)(float*, int64_t, float, float, float, float);

ScanFn pick_scan() {
#if MEDGYM_X86
  if (simd_level() >= SimdLevel::Avx512) return scan_avx512;
  if (simd_level() >= SimdLevel::Avx2Fma) return scan_avx2;
#endif
  return scan_scalar;
}

DlogitsFn pick_dlogits() {
#if MEDGYM_X86
  if (simd_level() >= SimdLevel::Avx512) return dlogits_avx512;
  if (simd_level() >= SimdLevel::Avx2Fma) return dlogits_avx2;
#endif
  return dlogits_scalar;
}

// Walks the rows in macro-blocks of up to plan.rows active rows. For each block, `skip(r)` is called
// for the ignored rows before it and `block(rows, nb, hb)` with the active row indices and a pointer
// to their hidden states, contiguous [nb, d] (h itself when the rows are consecutive, else gathered).
template <typename Skip, typename Block>
void for_each_block(const float* h, const int32_t* targets, int64_t N, int64_t d, const Plan& plan,
                    int64_t* rows, float* gathered, Skip skip, Block block) {
  int64_t r = 0;
  while (r < N) {
    int64_t nb = 0;
    for (; r < N && nb < plan.rows; ++r) {
      if (targets[r] < 0) skip(r);
      else rows[nb++] = r;
    }
    if (nb == 0) continue;
    const float* hb = h + rows[0] * d;
    if (rows[nb - 1] - rows[0] != nb - 1) {
      for (int64_t i = 0; i < nb; ++i) std::copy(h + rows[i] * d, h + (rows[i] + 1) * d, gathered + i * d);
      hb = gathered;
    }
    block(static_cast<const int64_t*>(rows), nb, hb);
  }
}

}  // namespace

namespace {

int64_t workspace_of(const Plan& p, int64_t N, int64_t d, int64_t V, bool backward, bool recompute_entropy) {
  const int64_t R = p.rows, C = p.chunk, T = p.threads;
  if (p.split == FusedLogprobSplit::Rows) {
    const int64_t L = p.ld;
    if (!backward) return 4 * N + T * (4 * R * d + 4 * R * L);
    return 4 * N + T * (4 * R * d + 4 * R * L) + 4 * (T - 1) * V * d + T;  // entropy is never recomputed
  }
  int64_t fwd = 4 * R * d + 4 * T * R * C + static_cast<int64_t>(sizeof(RowStat)) * T * R + 12 * R;
  if (!backward) return fwd;
  int64_t bwd = 4 * R * d + 4 * T * R * C + 4 * T * R * d + 28 * R + T;
  if (!recompute_entropy) return bwd;
  return std::max(8 * N + fwd, 4 * N + bwd);
}

}  // namespace

FusedLogprobPlanInfo fused_linear_logprob_plan(int64_t N, int64_t d, int64_t V, int threads, FusedLogprobSplit split) {
  Plan p = make_plan(N, d, V, threads, split);
  return {p.split, p.rows, p.chunk, p.threads, p.comb_rows};
}

int64_t fused_linear_logprob_workspace_bytes(int64_t N, int64_t d, int64_t V, int threads, bool backward,
                                             bool recompute_entropy, FusedLogprobSplit split) {
  if (N <= 0) return 0;
  return workspace_of(make_plan(N, d, V, threads, split), N, d, V, backward, recompute_entropy);
}

int64_t fused_linear_logprob_forward_backward_workspace_bytes(int64_t N, int64_t d, int64_t V, int threads,
                                                              FusedLogprobSplit split) {
  if (N <= 0) return 0;
  Plan p = make_plan(N, d, V, threads, split);
  if (p.split == FusedLogprobSplit::Rows) return workspace_of(p, N, d, V, true, false);
  if (p.comb_rows > 0) {  // the backward's buffers with the block's full logits instead of per-thread tiles
    const int64_t R = p.comb_rows, T = p.threads;
    return 4 * R * d + 4 * R * round_up(V, kAlign) + static_cast<int64_t>(sizeof(RowStat)) * T * R + 4 * R +
           4 * T * R * d + 28 * R + T;
  }
  // forward, then backward, with lse and entropy kept in between
  return 8 * N + std::max(workspace_of(p, N, d, V, false, false), workspace_of(p, N, d, V, true, false));
}

namespace {

// logp / entropy / lse of one row from the statistics of its `used` thread partials st[0], st[stride], ...
// (combined in thread order) and its target logit zt.
struct RowOut {
  float logp, entropy, lse;
};
RowOut combine_stats(const RowStat* st0, int64_t stride, int used, float zt) {
  double M = -std::numeric_limits<double>::infinity();
  for (int t = 0; t < used; ++t) {
    const RowStat& st = st0[t * stride];
    if (st.s > 0) M = std::max(M, static_cast<double>(st.m));
  }
  double S = 0, U = 0;
  for (int t = 0; t < used; ++t) {
    const RowStat& st = st0[t * stride];
    if (!(st.s > 0)) continue;
    double dm = st.m - M, a = std::exp(dm);
    S += a * st.s;
    U += a * (st.u + dm * st.s);
  }
  const double log_s = std::log(S);
  return {static_cast<float>((zt - M) - log_s), static_cast<float>(log_s - U / S), static_cast<float>(M + log_s)};
}

// Outputs of the forward computed inside a backward (forward_backward); null members are not written.
struct FwdOut {
  float *logp, *entropy, *lse;
};

// The output weight of a forward: fp32, or bf16 bits (widened per packed panel; forward only).
struct HeadW {
  const float* f32 = nullptr;
  const uint16_t* bf16 = nullptr;
};

// L[nb, cn] (row stride ldl) = alpha * hb[nb, d] @ W[v0 : v0 + cn]^T.
void logits_tile(const HeadW& W, int64_t nb, int64_t cn, int64_t d, float alpha, const float* hb, int64_t v0,
                 float* L, int64_t ldl) {
  if (W.bf16) sgemm_bf16w(nb, cn, d, alpha, hb, d, W.bf16 + v0 * d, d, 0.0f, L, ldl);
  else sgemm(false, true, nb, cn, d, alpha, hb, d, W.f32 + v0 * d, d, 0.0f, L, ldl);
}

void forward_vocab(const float* h, const HeadW& W, const int32_t* targets, int64_t N, int64_t d, int64_t V,
                   float temperature, float* logp, float* entropy, float* lse, const Plan& plan) {
  const int64_t R = plan.rows, C = plan.chunk;
  const float inv_tau = 1.0f / temperature;
  const ScanFn scan = pick_scan();
  auto gathered = buffer<float>(R * d);
  auto tiles = buffer<float>(plan.threads * R * C);
  auto stats = buffer<RowStat>(plan.threads * R);
  auto rows = buffer<int64_t>(R);
  auto zt = buffer<float>(R);

  auto skip = [&](int64_t r) {
    logp[r] = 0;
    if (entropy) entropy[r] = 0;
    if (lse) lse[r] = 0;
  };
  auto block = [&](const int64_t* rw, int64_t nb, const float* hb) {
    int used = 1;
    parallel_run(
        [&](int tid, int nt) {
          if (tid == 0) used = nt;
          int64_t vb, ve;
          vocab_range(V, tid, nt, &vb, &ve);
          float* L = tiles.get() + tid * R * C;
          RowStat* st = stats.get() + tid * R;
          for (int64_t i = 0; i < nb; ++i) st[i] = {0.0, 0.0, kNegInf};
          for (int64_t v0 = vb; v0 < ve; v0 += C) {
            const int64_t cn = std::min(C, ve - v0);
            logits_tile(W, nb, cn, d, inv_tau, hb, v0, L, C);
            for (int64_t i = 0; i < nb; ++i) {
              scan(L + i * C, cn, st[i]);
              const int64_t t = targets[rw[i]];
              if (t >= v0 && t < v0 + cn) zt[i] = L[i * C + (t - v0)];
            }
          }
        },
        plan.threads);
    for (int64_t i = 0; i < nb; ++i) {
      const RowOut o = combine_stats(stats.get() + i, R, used, zt[i]);
      const int64_t r = rw[i];
      logp[r] = o.logp;
      if (entropy) entropy[r] = o.entropy;
      if (lse) lse[r] = o.lse;
    }
  };
  for_each_block(h, targets, N, d, plan, rows.get(), gathered.get(), skip, block);
}

void backward_vocab(const float* h, const float* W, const int32_t* targets, const float* lse, const float* entropy,
                    const float* dlogp, const float* dentropy, int64_t N, int64_t d, int64_t V, float temperature,
                    float* dh, float* dW, bool accumulate_dh, const Plan& plan, const FwdOut* fwd = nullptr) {
  const int64_t R = plan.rows, C = plan.chunk;
  const float inv_tau = 1.0f / temperature;
  const DlogitsFn to_dlogits = pick_dlogits();
  const ScanFn scan = pick_scan();
  auto gathered = buffer<float>(R * d);
  // with fwd: the macro-block's full logits [R x ZL] (kept from the forward sweep to the backward one),
  // else one [R x C] tile per thread
  const int64_t ZL = round_up(V, kAlign);
  auto tiles = buffer<float>(fwd ? R * ZL : plan.threads * R * C);
  auto stats = buffer<RowStat>(fwd ? plan.threads * R : 0);
  auto zt = buffer<float>(fwd ? R : 0);
  auto partials = buffer<float>(plan.threads * R * d);
  auto rows = buffer<int64_t>(R);
  auto coef = buffer<float>(4 * R);  // per active row of the block: lse, H, g, c
  float *b_lse = coef.get(), *b_H = b_lse + R, *b_g = b_H + R, *b_c = b_g + R;
  auto b_t = buffer<int32_t>(R);
  std::vector<char> touched(plan.threads);

  auto skip = [&](int64_t r) {
    if (!accumulate_dh) std::fill(dh + r * d, dh + (r + 1) * d, 0.0f);
    if (fwd) {
      if (fwd->logp) fwd->logp[r] = 0;
      if (fwd->entropy) fwd->entropy[r] = 0;
      if (fwd->lse) fwd->lse[r] = 0;
    }
  };
  auto block = [&](const int64_t* rw, int64_t nb, const float* hb) {
    if (fwd) {  // forward sweep, as forward_vocab, but into the block's full logits
      int used = 1;
      parallel_run(
          [&](int tid, int nt) {
            if (tid == 0) used = nt;
            int64_t vb, ve;
            vocab_range(V, tid, nt, &vb, &ve);
            RowStat* st = stats.get() + tid * R;
            for (int64_t i = 0; i < nb; ++i) st[i] = {0.0, 0.0, kNegInf};
            for (int64_t v0 = vb; v0 < ve; v0 += C) {
              const int64_t cn = std::min(C, ve - v0);
              float* L = tiles.get() + v0;
              sgemm(false, true, nb, cn, d, inv_tau, hb, d, W + v0 * d, d, 0.0f, L, ZL);
              for (int64_t i = 0; i < nb; ++i) {
                scan(L + i * ZL, cn, st[i]);
                const int64_t t = targets[rw[i]];
                if (t >= v0 && t < v0 + cn) zt[i] = L[i * ZL + (t - v0)];
              }
            }
          },
          plan.threads);
      for (int64_t i = 0; i < nb; ++i) {
        const RowOut o = combine_stats(stats.get() + i, R, used, zt[i]);
        const int64_t r = rw[i];
        if (fwd->logp) fwd->logp[r] = o.logp;
        if (fwd->entropy) fwd->entropy[r] = o.entropy;
        if (fwd->lse) fwd->lse[r] = o.lse;
        b_lse[i] = o.lse;
        b_H[i] = dentropy ? o.entropy : 0.0f;
      }
    }
    for (int64_t i = 0; i < nb; ++i) {
      const int64_t r = rw[i];
      if (!fwd) {
        b_lse[i] = lse[r];
        b_H[i] = dentropy ? entropy[r] : 0.0f;
      }
      b_g[i] = dlogp ? dlogp[r] * inv_tau : 0.0f;
      b_c[i] = dentropy ? dentropy[r] * inv_tau : 0.0f;
      b_t[i] = targets[r];
    }
    int used = 1;
    parallel_run(
        [&](int tid, int nt) {
          if (tid == 0) used = nt;
          int64_t vb, ve;
          vocab_range(V, tid, nt, &vb, &ve);
          float* dhp = partials.get() + tid * R * d;
          const int64_t ld = fwd ? ZL : C;
          bool first = true;
          for (int64_t v0 = vb; v0 < ve; v0 += C) {
            const int64_t cn = std::min(C, ve - v0);
            const float* Wc = W + v0 * d;
            float* L = fwd ? tiles.get() + v0 : tiles.get() + tid * R * C;
            if (!fwd) sgemm(false, true, nb, cn, d, inv_tau, hb, d, Wc, d, 0.0f, L, ld);  // z tile
            for (int64_t i = 0; i < nb; ++i) {
              to_dlogits(L + i * ld, cn, b_lse[i], b_H[i], b_g[i], b_c[i]);
              const int64_t t = b_t[i];
              if (t >= v0 && t < v0 + cn) L[i * ld + (t - v0)] += b_g[i];
            }
            sgemm(true, false, cn, d, nb, 1.0f, L, ld, hb, d, 1.0f, dW + v0 * d, d);  // dW[chunk] += dl^T h
            sgemm(false, false, nb, d, cn, 1.0f, L, ld, Wc, d, first ? 0.0f : 1.0f, dhp, d);  // dh_t += dl W
            first = false;
          }
          touched[tid] = !first;
        },
        plan.threads);
    // dh rows = sum of the thread partials, in thread order.
    parallel_for(nb, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        float* out = dh + rw[i] * d;
        for (int64_t j = 0; j < d; ++j) {
          float acc = 0.0f;
          for (int t = 0; t < used; ++t)
            if (touched[t]) acc += partials[(t * R + i) * d + j];
          out[j] = accumulate_dh ? out[j] + acc : acc;
        }
      }
    }, 16);
  };
  for_each_block(h, targets, N, d, plan, rows.get(), gathered.get(), skip, block);
}

// ---- row split (small vocabularies) ----------------------------------------------------------------

// logp / entropy / lse of one row from its statistics over the full row (the single-partial case of the
// thread combination in forward_vocab, same arithmetic).
inline RowOut finish_row(const RowStat& st, float zt) {
  const double M = st.m, S = st.s, U = st.u, log_s = std::log(S);
  return {static_cast<float>((zt - M) - log_s), static_cast<float>(log_s - U / S), static_cast<float>(M + log_s)};
}

// The active rows (target >= 0) in order; the ignored ones are handed to skip(r).
template <typename Skip>
int64_t active_rows(const int32_t* targets, int64_t N, int32_t* act, Skip skip) {
  int64_t n = 0;
  for (int64_t r = 0; r < N; ++r) {
    if (targets[r] < 0) skip(r);
    else act[n++] = static_cast<int32_t>(r);
  }
  return n;
}

// Runs body(tid, rows, nb, hb, gathered_buf) on each thread for each block of up to plan.rows of that
// thread's contiguous share of the active rows; hb points at the blocks' hidden states, [nb, d]
// contiguous (h itself when the rows are consecutive; then hb != gbuf).
template <typename Body>
void for_each_row_block(const float* h, int64_t d, const int32_t* act, int64_t n_act, const Plan& plan, float* gath,
                        Body body) {
  parallel_run(
      [&](int tid, int nt) {
        int64_t a0, a1;
        static_chunk(n_act, tid, nt, &a0, &a1);
        float* gbuf = gath + tid * plan.rows * d;
        for (int64_t b = a0; b < a1; b += plan.rows) {
          const int64_t nb = std::min(plan.rows, a1 - b);
          const int32_t* rw = act + b;
          const float* hb = h + static_cast<int64_t>(rw[0]) * d;
          if (rw[nb - 1] - rw[0] != nb - 1) {
            for (int64_t i = 0; i < nb; ++i) std::copy(h + rw[i] * d, h + (rw[i] + 1) * d, gbuf + i * d);
            hb = gbuf;
          }
          body(tid, rw, nb, hb, gbuf);
        }
      },
      plan.threads);
}

void forward_rows(const float* h, const HeadW& W, const int32_t* targets, int64_t N, int64_t d, int64_t V,
                  float temperature, float* logp, float* entropy, float* lse, const Plan& plan) {
  const int64_t R = plan.rows, L = plan.ld;
  const float inv_tau = 1.0f / temperature;
  const ScanFn scan = pick_scan();
  auto act = buffer<int32_t>(N);
  auto gath = buffer<float>(plan.threads * R * d);
  auto tiles = buffer<float>(plan.threads * R * L);
  const int64_t n_act = active_rows(targets, N, act.get(), [&](int64_t r) {
    logp[r] = 0;
    if (entropy) entropy[r] = 0;
    if (lse) lse[r] = 0;
  });
  for_each_row_block(h, d, act.get(), n_act, plan, gath.get(),
                     [&](int tid, const int32_t* rw, int64_t nb, const float* hb, float*) {
                       float* Z = tiles.get() + tid * R * L;
                       logits_tile(W, nb, V, d, inv_tau, hb, 0, Z, L);
                       for (int64_t i = 0; i < nb; ++i) {
                         RowStat st{0.0, 0.0, kNegInf};
                         scan(Z + i * L, V, st);
                         const int64_t r = rw[i];
                         const RowOut o = finish_row(st, Z[i * L + targets[r]]);
                         logp[r] = o.logp;
                         if (entropy) entropy[r] = o.entropy;
                         if (lse) lse[r] = o.lse;
                       }
                     });
}

// Backward of the row split; with `fwd` it is the combined forward+backward: the row statistics are
// taken from the tile itself (logp/entropy/lse written when non-null) instead of lse/entropy.
void backward_rows(const float* h, const float* W, const int32_t* targets, const float* lse, const float* entropy,
                   const float* dlogp, const float* dentropy, int64_t N, int64_t d, int64_t V, float temperature,
                   float* dh, float* dW, bool accumulate_dh, const Plan& plan, const FwdOut* fwd) {
  const int64_t R = plan.rows, L = plan.ld;
  const float inv_tau = 1.0f / temperature;
  const ScanFn scan = pick_scan();
  const DlogitsFn to_dlogits = pick_dlogits();
  auto act = buffer<int32_t>(N);
  auto gath = buffer<float>(plan.threads * R * d);
  auto tiles = buffer<float>(plan.threads * R * L);
  auto partials = buffer<float>((plan.threads - 1) * V * d);  // thread 0 accumulates into dW itself
  std::vector<char> touched(plan.threads, 0);
  const int64_t n_act = active_rows(targets, N, act.get(), [&](int64_t r) {
    if (!accumulate_dh) std::fill(dh + r * d, dh + (r + 1) * d, 0.0f);
    if (fwd) {
      if (fwd->logp) fwd->logp[r] = 0;
      if (fwd->entropy) fwd->entropy[r] = 0;
      if (fwd->lse) fwd->lse[r] = 0;
    }
  });
  const bool need_stats = fwd || (dentropy && !entropy);
  for_each_row_block(
      h, d, act.get(), n_act, plan, gath.get(),
      [&](int tid, const int32_t* rw, int64_t nb, const float* hb, float* gbuf) {
        float* Z = tiles.get() + tid * R * L;
        sgemm(false, true, nb, V, d, inv_tau, hb, d, W, d, 0.0f, Z, L);  // z
        for (int64_t i = 0; i < nb; ++i) {
          const int64_t r = rw[i];
          const int64_t t = targets[r];
          float* z = Z + i * L;
          float l = fwd ? 0.0f : lse[r], H = (dentropy && entropy) ? entropy[r] : 0.0f;
          if (need_stats) {
            RowStat st{0.0, 0.0, kNegInf};
            scan(z, V, st);
            const RowOut o = finish_row(st, z[t]);
            if (fwd) {
              l = o.lse;
              if (fwd->logp) fwd->logp[r] = o.logp;
              if (fwd->entropy) fwd->entropy[r] = o.entropy;
              if (fwd->lse) fwd->lse[r] = o.lse;
            }
            if (dentropy) H = o.entropy;
          }
          const float g = dlogp ? dlogp[r] * inv_tau : 0.0f, c = dentropy ? dentropy[r] * inv_tau : 0.0f;
          to_dlogits(z, V, l, H, g, c);
          z[t] += g;
        }
        // dW (thread 0: dW itself, else the thread's partial) += dl^T h_block
        float* dWt = tid == 0 ? dW : partials.get() + (tid - 1) * V * d;
        sgemm(true, false, V, d, nb, 1.0f, Z, L, hb, d, (tid == 0 || touched[tid]) ? 1.0f : 0.0f, dWt, d);
        touched[tid] = 1;
        // dh rows = dl W: straight into dh when the rows are consecutive, else via gbuf (hb is done)
        if (hb != gbuf) {
          sgemm(false, false, nb, d, V, 1.0f, Z, L, W, d, accumulate_dh ? 1.0f : 0.0f,
                dh + static_cast<int64_t>(rw[0]) * d, d);
        } else {
          sgemm(false, false, nb, d, V, 1.0f, Z, L, W, d, 0.0f, gbuf, d);
          for (int64_t i = 0; i < nb; ++i) {
            float* out = dh + static_cast<int64_t>(rw[i]) * d;
            const float* src = gbuf + i * d;
            if (accumulate_dh) for (int64_t j = 0; j < d; ++j) out[j] += src[j];
            else std::copy(src, src + d, out);
          }
        }
      });
  // dW += partials of threads 1.. in thread order (element-wise, so any split of the elements is exact).
  bool any = false;
  for (int t = 1; t < plan.threads; ++t) any = any || touched[t];
  if (!any) return;
  parallel_for(V * d, [&](int64_t e0, int64_t e1) {
    for (int t = 1; t < plan.threads; ++t) {
      if (!touched[t]) continue;
      const float* p = partials.get() + (t - 1) * V * d;
      for (int64_t e = e0; e < e1; ++e) dW[e] += p[e];
    }
  }, 4096);
}

}  // namespace

void fused_linear_logprob_forward(const float* h, const float* W, const int32_t* targets, int64_t N, int64_t d,
                                  int64_t V, float temperature, float* logp, float* entropy, float* lse,
                                  FusedLogprobSplit split) {
  if (N <= 0) return;
  const Plan plan = make_plan(N, d, V, num_threads(), split);
  if (plan.split == FusedLogprobSplit::Rows) forward_rows(h, HeadW{W, nullptr}, targets, N, d, V, temperature, logp, entropy, lse, plan);
  else forward_vocab(h, HeadW{W, nullptr}, targets, N, d, V, temperature, logp, entropy, lse, plan);
}

void fused_linear_logprob_forward_bf16w(const float* h, const uint16_t* W, const int32_t* targets, int64_t N,
                                        int64_t d, int64_t V, float temperature, float* logp, float* entropy,
                                        float* lse, FusedLogprobSplit split) {
  if (N <= 0) return;
  const Plan plan = make_plan(N, d, V, num_threads(), split);
  const HeadW w{nullptr, W};
  if (plan.split == FusedLogprobSplit::Rows) forward_rows(h, w, targets, N, d, V, temperature, logp, entropy, lse, plan);
  else forward_vocab(h, w, targets, N, d, V, temperature, logp, entropy, lse, plan);
}

void fused_linear_logprob_backward(const float* h, const float* W, const int32_t* targets, const float* lse,
                                   const float* entropy, const float* dlogp, const float* dentropy, int64_t N,
                                   int64_t d, int64_t V, float temperature, float* dh, float* dW,
                                   bool accumulate_dh, FusedLogprobSplit split) {
  if (N <= 0) return;
  if (!dlogp && !dentropy) {  // zero cotangent: dW += 0, dh = 0
    if (!accumulate_dh) std::fill(dh, dh + N * d, 0.0f);
    return;
  }
  const Plan plan = make_plan(N, d, V, num_threads(), split);
  if (plan.split == FusedLogprobSplit::Rows) {
    backward_rows(h, W, targets, lse, entropy, dlogp, dentropy, N, d, V, temperature, dh, dW, accumulate_dh, plan,
                  nullptr);
    return;
  }
  std::unique_ptr<float[]> recomputed;
  if (dentropy && !entropy) {
    recomputed = buffer<float>(N);
    auto scratch = buffer<float>(N);
    forward_vocab(h, HeadW{W, nullptr}, targets, N, d, V, temperature, scratch.get(), recomputed.get(), nullptr, plan);
    entropy = recomputed.get();
  }
  backward_vocab(h, W, targets, lse, entropy, dlogp, dentropy, N, d, V, temperature, dh, dW, accumulate_dh, plan);
}

void fused_linear_logprob_forward_backward(const float* h, const float* W, const int32_t* targets, int64_t N,
                                           int64_t d, int64_t V, float temperature, const float* dlogp,
                                           const float* dentropy, float* logp, float* entropy, float* lse,
                                           float* dh, float* dW, bool accumulate_dh, FusedLogprobSplit split) {
  if (N <= 0) return;
  const Plan plan = make_plan(N, d, V, num_threads(), split);
  if (plan.split == FusedLogprobSplit::Rows) {
    const FwdOut out{logp, entropy, lse};
    if (!dlogp && !dentropy) {
      forward_rows(h, HeadW{W, nullptr}, targets, N, d, V, temperature, logp, entropy, lse, plan);
      if (!accumulate_dh) std::fill(dh, dh + N * d, 0.0f);
      return;
    }
    backward_rows(h, W, targets, nullptr, nullptr, dlogp, dentropy, N, d, V, temperature, dh, dW, accumulate_dh,
                  plan, &out);
    return;
  }
  if (!dlogp && !dentropy) {
    forward_vocab(h, HeadW{W, nullptr}, targets, N, d, V, temperature, logp, entropy, lse, plan);
    if (!accumulate_dh) std::fill(dh, dh + N * d, 0.0f);
    return;
  }
  if (plan.comb_rows > 0) {  // one sweep: keep each macro-block's full logits between forward and backward
    Plan q = plan;
    q.rows = plan.comb_rows;
    const FwdOut out{logp, entropy, lse};
    backward_vocab(h, W, targets, nullptr, nullptr, dlogp, dentropy, N, d, V, temperature, dh, dW, accumulate_dh, q,
                   &out);
    return;
  }
  // too few rows: forward (lse and entropy kept), then backward
  auto keep = buffer<float>(2 * N);
  float* l = lse ? lse : keep.get();
  float* H = entropy ? entropy : keep.get() + N;
  forward_vocab(h, HeadW{W, nullptr}, targets, N, d, V, temperature, logp, H, l, plan);
  fused_linear_logprob_backward(h, W, targets, l, H, dlogp, dentropy, N, d, V, temperature, dh, dW, accumulate_dh,
                                split);
}

}  // namespace medgym
