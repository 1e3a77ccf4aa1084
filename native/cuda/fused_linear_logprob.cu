// Fused linear + log-softmax + gather (+ entropy) twins of cpu/fused_linear_logprob.h, on the block-tile
// GEMM engines of gemm_tile.cuh (TcTile for bf16 h/W, SimtTile for fp32). z = (h @ W^T) * (1 / tau).
//  - forward: block (split s, row tile) computes the logit tiles of its vocabulary range one after the
//    other (never more than one BM x BN tile in shared memory) and folds each into an online
//    (max, Σe^(z-m), Σe^(z-m)(z-m)) per row; the block holding a row's target column saves z_t. A
//    second kernel merges the splits of each row in split order. The split count follows the SM
//    count (enough blocks to fill the device), so rounding may differ between devices, never runs.
//  - backward: per macro-block of Rc rows, one kernel recomputes each logit tile and writes
//    dlogits = -p (g + c (u + H)) (+ g at the target), g = dlogp / tau, c = dentropy / tau,
//    u = z - lse, into an Rc x V scratch (fp32, or bf16 for the bf16 path), then
//    dW += dlogits^T h_block and dh_block (+)= dlogits W are two ordinary GEMMs. Rc is chosen so the
//    scratch stays under kCudaFusedLogprobScratchBytes; no atomics anywhere.
#include "cuda/gemm_tile.cuh"

namespace medgym::cuda {

namespace {

template <class Eng>
__global__ void __launch_bounds__(Eng::THREADS, Eng::MIN_BLOCKS)
    flp_forward_kernel(const typename Eng::In* h, const typename Eng::In* W, const int32_t* targets, int64_t N,
                       int64_t d, int64_t V, float it, bool vec_h, bool vec_w, int64_t tiles_per_split, float* pm,
                       float* ps, float* pu, float* zt) {
  extern __shared__ __align__(128) unsigned char smem[];
  constexpr int BM = Eng::BM, BN = Eng::BN, TPR = Eng::THREADS / BM;  // threads per tile row
  static_assert(TPR == 2 || TPR == 4, "row split of the tile");
  const int64_t m0 = int64_t(blockIdx.y) * BM, split = blockIdx.x;
  const int64_t nvt = ceil_div(V, BN), t0 = split * tiles_per_split, t1 = min(nvt, t0 + tiles_per_split);
  const int r = threadIdx.x / TPR, sub = threadIdx.x % TPR;
  const int64_t gr = m0 + r;
  const int tgt = gr < N ? targets[gr] : -1;
  LseState acc = lse_empty();  // identical in the TPR threads of the row (butterfly merges)
  for (int64_t vt = t0; vt < t1; ++vt) {
    const int64_t n0 = vt * BN;
    __syncthreads();  // the previous tile has been read
    Eng::template compute<false, true>(h, d, vec_h, W, d, vec_w, N, V, d, m0, n0, smem);
    const float* tile = reinterpret_cast<const float*>(smem) + r * Eng::TLD;
    LseState st = lse_empty();
#pragma unroll 4
    for (int k = 0; k < BN / TPR; ++k) {
      const int c = sub + TPR * k;
      if (n0 + c < V) lse_add(st, tile[c] * it);
    }
#pragma unroll
    for (int o = 1; o < TPR; o <<= 1) {
      const LseState other{__shfl_xor_sync(0xffffffffu, st.m, o), __shfl_xor_sync(0xffffffffu, st.s, o),
                           __shfl_xor_sync(0xffffffffu, st.u, o)};
      st = lse_merge(st, other);
    }
    acc = lse_merge(acc, st);
    if (sub == 0 && tgt >= n0 && tgt < n0 + BN) zt[gr] = tile[tgt - n0] * it;
  }
  if (sub == 0 && gr < N) {
    const int64_t i = split * N + gr;
    pm[i] = acc.m, ps[i] = acc.s, pu[i] = acc.u;
  }
}

__global__ void flp_combine_kernel(const int32_t* targets, int64_t N, int splits, const float* pm, const float* ps,
                                   const float* pu, const float* zt, float* logp, float* entropy, float* lse) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < N; r += int64_t(gridDim.x) * blockDim.x) {
    if (targets[r] < 0) {
      logp[r] = 0.0f;
      if (entropy) entropy[r] = 0.0f;
      if (lse) lse[r] = 0.0f;
      continue;
    }
    LseState st{pm[r], ps[r], pu[r]};
    for (int s = 1; s < splits; ++s) st = lse_merge(st, LseState{pm[s * N + r], ps[s * N + r], pu[s * N + r]});
    const float log_s = logf(st.s);
    logp[r] = (zt[r] - st.m) - log_s;
    if (entropy) entropy[r] = log_s - st.u / st.s;
    if (lse) lse[r] = st.m + log_s;
  }
}

// dlogits of rows [0, rc) of a macro-block (pointers already offset to its first row) into D (row stride ldD).
template <class Eng, typename TD>
__global__ void __launch_bounds__(Eng::THREADS, Eng::MIN_BLOCKS)
    flp_dlogits_kernel(const typename Eng::In* h, const typename Eng::In* W, const int32_t* targets, const float* lse,
                       const float* entropy, const float* dlogp, const float* dentropy, int64_t rc, int64_t d,
                       int64_t V, float it, bool vec_h, bool vec_w, TD* D, int64_t ldD) {
  extern __shared__ __align__(128) unsigned char smem[];
  const int64_t m0 = int64_t(blockIdx.y) * Eng::BM, n0 = int64_t(blockIdx.x) * Eng::BN;
  Eng::template compute<false, true>(h, d, vec_h, W, d, vec_w, rc, V, d, m0, n0, smem);
  const float* tile = reinterpret_cast<const float*>(smem);
  for (int i = threadIdx.x; i < Eng::BM * Eng::BN; i += Eng::THREADS) {
    const int r = i / Eng::BN, c = i % Eng::BN;
    const int64_t lr = m0 + r, gc = n0 + c;
    if (lr >= rc || gc >= V) continue;
    const int t = targets[lr];
    float dl = 0.0f;
    if (t >= 0) {
      const float g = dlogp ? dlogp[lr] * it : 0.0f, cc = dentropy ? dentropy[lr] * it : 0.0f;
      const float H = dentropy ? entropy[lr] : 0.0f;
      const float u = fmaxf(tile[r * Eng::TLD + c] * it - lse[lr], kLseFloor);
      dl = -exp_flush(u) * (g + cc * (u + H));
      if (gc == t) dl += g;
    }
    store_f(D + lr * ldD + gc, dl);
  }
}

// The GEMM of the operand type (fp32: SIMT sgemm; bf16: tensor cores, fp32 C).
void gemm_in(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
             int64_t ldb, float beta, float* C, int64_t ldc, cudaStream_t s) {
  sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc, s);
}
void gemm_in(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const __nv_bfloat16* A, int64_t lda,
             const __nv_bfloat16* B, int64_t ldb, float beta, float* C, int64_t ldc, cudaStream_t s) {
  gemm_bf16(ta, tb, M, N, K, 1.0f, reinterpret_cast<const Bf16*>(A), lda, reinterpret_cast<const Bf16*>(B), ldb, beta,
            C, ldc, s);
}

template <class Eng>
void forward(const typename Eng::In* h, const typename Eng::In* W, const int32_t* targets, int64_t N, int64_t d,
             int64_t V, float tau, float* logp, float* entropy, float* lse, cudaStream_t s, const char* name) {
  if (N <= 0) return;
  const int64_t row_tiles = ceil_div(N, Eng::BM), nvt = std::max<int64_t>(1, ceil_div(V, Eng::BN));
  if (row_tiles > 65535) throw std::invalid_argument(std::string(name) + ": N too large for the grid");
  const int64_t want = int64_t(Eng::MIN_BLOCKS) * sm_count();
  int64_t splits = std::min(nvt, std::max<int64_t>(1, ceil_div(want, row_tiles)));
  const int64_t per_split = ceil_div(nvt, splits);
  splits = ceil_div(nvt, per_split);
  Scratch part(size_t(N) * (3 * splits + 1) * sizeof(float), s);
  float* pm = part.as<float>();
  float* ps = pm + splits * N;
  float* pu = ps + splits * N;
  float* zt = pu + splits * N;
  auto kernel = flp_forward_kernel<Eng>;
  allow_smem(kernel, Eng::kSmem, name);
  kernel<<<dim3(static_cast<unsigned>(splits), static_cast<unsigned>(row_tiles)), Eng::THREADS, Eng::kSmem, s>>>(
      h, W, targets, N, d, V, 1.0f / tau, bf16_rows_vectorizable(h, d), bf16_rows_vectorizable(W, d), per_split, pm, ps,
      pu, zt);
  check_launch(name);
  flp_combine_kernel<<<grid_for(N, 256), 256, 0, s>>>(targets, N, static_cast<int>(splits), pm, ps, pu, zt, logp,
                                                       entropy, lse);
  check_launch(name);
}

template <class Eng, typename TD>
void backward(const typename Eng::In* h, const typename Eng::In* W, const int32_t* targets, const float* lse,
              const float* entropy, const float* dlogp, const float* dentropy, int64_t N, int64_t d, int64_t V,
              float tau, float* dh, float* dW, bool acc, cudaStream_t s, const char* name) {
  if (N <= 0 || d <= 0) return;
  if (V <= 0) {  // no logits: dh = 0 (or untouched), dW untouched
    if (!acc) check(cudaMemsetAsync(dh, 0, size_t(N) * d * sizeof(float), s), name);
    return;
  }
  // The entropy the gradient of dentropy needs: recomputed when the caller has none.
  Scratch ent_scratch(dentropy && !entropy ? size_t(N) * 2 * sizeof(float) : 0, s);
  if (dentropy && !entropy) {
    float* e = ent_scratch.as<float>();
    forward<Eng>(h, W, targets, N, d, V, tau, e + N, e, nullptr, s, name);
    entropy = e;
  }
  const int64_t ldD = (V + 7) / 8 * 8;
  const int64_t fit = kCudaFusedLogprobScratchBytes / (ldD * int64_t(sizeof(TD))) / Eng::BM * Eng::BM;
  const int64_t Rc = std::min(N, std::max<int64_t>(Eng::BM, fit));
  Scratch D(size_t(Rc) * ldD * sizeof(TD), s);
  auto kernel = flp_dlogits_kernel<Eng, TD>;
  allow_smem(kernel, Eng::kSmem, name);
  const float it = 1.0f / tau;
  for (int64_t r0 = 0; r0 < N; r0 += Rc) {
    const int64_t rc = std::min(Rc, N - r0);
    const auto* hb = h + r0 * d;
    kernel<<<dim3(static_cast<unsigned>(ceil_div(V, Eng::BN)), static_cast<unsigned>(ceil_div(rc, Eng::BM))),
             Eng::THREADS, Eng::kSmem, s>>>(hb, W, targets + r0, lse + r0, entropy ? entropy + r0 : nullptr,
                                            dlogp ? dlogp + r0 : nullptr, dentropy ? dentropy + r0 : nullptr, rc, d, V,
                                            it, bf16_rows_vectorizable(hb, d), bf16_rows_vectorizable(W, d),
                                            D.as<TD>(), ldD);
    check_launch(name);
    gemm_in(true, false, V, d, rc, D.as<TD>(), ldD, hb, d, 1.0f, dW, d, s);                  // dW += D^T h
    gemm_in(false, false, rc, d, V, D.as<TD>(), ldD, W, d, acc ? 1.0f : 0.0f, dh + r0 * d, d, s);  // dh (+)= D W
  }
}

template <class Eng, typename TD>
void forward_backward(const typename Eng::In* h, const typename Eng::In* W, const int32_t* targets, int64_t N,
                      int64_t d, int64_t V, float tau, const float* dlogp, const float* dentropy, float* logp,
                      float* entropy, float* lse, float* dh, float* dW, bool acc, cudaStream_t s, const char* name) {
  if (N <= 0) return;
  // The backward needs lse, and the entropy when dentropy is given: scratch when the caller wants none.
  Scratch extra(size_t(N) * 2 * sizeof(float), s);
  if (!lse) lse = extra.as<float>();
  if (!entropy && dentropy) entropy = extra.as<float>() + N;
  forward<Eng>(h, W, targets, N, d, V, tau, logp, entropy, lse, s, name);
  backward<Eng, TD>(h, W, targets, lse, entropy, dlogp, dentropy, N, d, V, tau, dh, dW, acc, s, name);
}

}  // namespace

void fused_linear_logprob_forward(const float* h, const float* W, const int32_t* targets, int64_t N, int64_t d,
                                  int64_t V, float temperature, float* logp, float* entropy, float* lse, Stream s) {
  forward<SimtTile>(h, W, targets, N, d, V, temperature, logp, entropy, lse, to_stream(s),
                    "fused_linear_logprob_forward kernel");
}
void fused_linear_logprob_backward(const float* h, const float* W, const int32_t* targets, const float* lse,
                                   const float* entropy, const float* dlogp, const float* dentropy, int64_t N,
                                   int64_t d, int64_t V, float temperature, float* dh, float* dW, bool accumulate_dh,
                                   Stream s) {
  backward<SimtTile, float>(h, W, targets, lse, entropy, dlogp, dentropy, N, d, V, temperature, dh, dW, accumulate_dh,
                            to_stream(s), "fused_linear_logprob_backward kernel");
}
void fused_linear_logprob_forward_backward(const float* h, const float* W, const int32_t* targets, int64_t N,
                                           int64_t d, int64_t V, float temperature, const float* dlogp,
                                           const float* dentropy, float* logp, float* entropy, float* lse, float* dh,
                                           float* dW, bool accumulate_dh, Stream s) {
  forward_backward<SimtTile, float>(h, W, targets, N, d, V, temperature, dlogp, dentropy, logp, entropy, lse, dh, dW,
                                    accumulate_dh, to_stream(s), "fused_linear_logprob_forward_backward kernel");
}

void fused_linear_logprob_forward_bf16(const Bf16* h, const Bf16* W, const int32_t* targets, int64_t N, int64_t d,
                                       int64_t V, float temperature, float* logp, float* entropy, float* lse,
                                       Stream s) {
  forward<TcTile>(to_bf(h), to_bf(W), targets, N, d, V, temperature, logp, entropy, lse, to_stream(s),
                  "fused_linear_logprob_forward_bf16 kernel");
}
void fused_linear_logprob_backward_bf16(const Bf16* h, const Bf16* W, const int32_t* targets, const float* lse,
                                        const float* entropy, const float* dlogp, const float* dentropy, int64_t N,
                                        int64_t d, int64_t V, float temperature, float* dh, float* dW,
                                        bool accumulate_dh, Stream s) {
  backward<TcTile, __nv_bfloat16>(to_bf(h), to_bf(W), targets, lse, entropy, dlogp, dentropy, N, d, V, temperature,
                                  dh, dW, accumulate_dh, to_stream(s), "fused_linear_logprob_backward_bf16 kernel");
}
void fused_linear_logprob_forward_backward_bf16(const Bf16* h, const Bf16* W, const int32_t* targets, int64_t N,
                                                int64_t d, int64_t V, float temperature, const float* dlogp,
                                                const float* dentropy, float* logp, float* entropy, float* lse,
                                                float* dh, float* dW, bool accumulate_dh, Stream s) {
  forward_backward<TcTile, __nv_bfloat16>(to_bf(h), to_bf(W), targets, N, d, V, temperature, dlogp, dentropy, logp,
                                          entropy, lse, dh, dW, accumulate_dh, to_stream(s),
                                          "fused_linear_logprob_forward_backward_bf16 kernel");
}

}  // namespace medgym::cuda
