// Fused linear + log-softmax + gather (+ entropy), forward and backward (SPEC §1: logits = ln_f(x) @ wte^T).
//
// Inputs: hidden states h [N,d], output weight W [V,d] (row-major, torch Linear layout: logits = h @ W^T),
// targets [N] (int32; target < 0 marks an ignored row) and a temperature tau > 0. With z = logits / tau:
//   logp[i]    = z[i,t_i] - lse[i],       lse[i] = logsumexp_k z[i,k]
//   entropy[i] = -sum_k p log p = lse[i] - E_p[z],   p = softmax(z[i,:])
// Ignored rows get logp = entropy = lse = 0 and no gradient.
//
// Neither pass materializes the N x V logits. Rows are taken in macro-blocks of up to kRowBlock active
// rows (ignored rows are skipped, so their GEMM work is saved too); inside a macro-block the vocabulary
// is split into one contiguous range per thread (multiples of 16 columns), walked in chunks of at most
// kVocabChunk columns. Per (thread, chunk) the logits tile [rows x chunk] is computed with sgemm.
//  - forward: an online logsumexp per row keeps the running max m, s = sum e^{z-m} and
//    u = sum e^{z-m} (z-m) (relative to m, so that entropy = log s - u/s adds two non-negative terms and
//    never cancels); per-thread partials are combined in thread order.
//  - backward: per tile, recompute z (GEMM 1), turn it in place into
//      dlogits = dz / tau,  dz_k = dlogp (1[k=t] - p_k) - dentropy p_k (z_k - E_p[z]),  E_p[z] = lse - entropy,
//    then dW[chunk] += dlogits^T @ h_block (GEMM 2; each thread owns its vocab rows of dW, so no race) and
//    dh_partial[thread] += dlogits @ W[chunk] (GEMM 3). The partials are summed in thread order.
// Results are bit-identical from call to call for a given thread count and SIMD level; another thread
// count changes the vocab split and thus the rounding (not the math).
//
// Workspace (bytes, allocated per call and freed before returning), with T = threads,
// R = min(kRowBlock, N) rows per macro-block, C = min(kVocabChunk, 16 * ceil(ceil(V/16) / T)):
//   forward:  4 R d (gathered rows) + 4 T R C (logits tiles) + 24 T R (row partials) + 12 R
//   backward: 4 R d + 4 T R C + 4 T R d (dh partials) + 28 R + T
//             + when dentropy is given without entropy: the entropy is recomputed by a forward pass first,
//               peak max(8 N + forward, 4 N + backward)
// i.e. O(T R (C + d)): independent of V once V >= 256 T, and never N x V. (sgemm keeps its own
// per-thread packing buffers besides, reused across calls.) For N = 2048, d = 384,
// V = 32768, T = 2: ~1.6 MiB backward, against 512 MiB for unfused logits + dlogits in float32.
// fused_linear_logprob_workspace_bytes returns these numbers.
#pragma once
#include <cstdint>

namespace medgym {

constexpr int64_t kFusedLogprobRowBlock = 256;
constexpr int64_t kFusedLogprobVocabChunk = 256;

// logp [N] is required; entropy [N] and lse [N] may be null (lse is what the backward needs).
void fused_linear_logprob_forward(const float* h, const float* W, const int32_t* targets, int64_t N, int64_t d,
                                  int64_t V, float temperature, float* logp, float* entropy, float* lse);

// Gradients of  sum_i dlogp[i] logp[i] + dentropy[i] entropy[i]  (either of dlogp / dentropy may be null,
// meaning zero). lse [N] comes from the forward. entropy [N] (from the forward) is used only when dentropy
// is given; when it is null then, it is recomputed by a forward pass (costs one more GEMM sweep).
// dh [N,d] is overwritten (ignored rows get 0) or, with accumulate_dh, incremented (ignored rows untouched).
// dW [V,d] is always incremented (gradient accumulation across micro-batches).
void fused_linear_logprob_backward(const float* h, const float* W, const int32_t* targets, const float* lse,
                                   const float* entropy, const float* dlogp, const float* dentropy, int64_t N,
                                   int64_t d, int64_t V, float temperature, float* dh, float* dW,
                                   bool accumulate_dh);

// Peak workspace in bytes of one call with `threads` threads (see the formula above).
int64_t fused_linear_logprob_workspace_bytes(int64_t N, int64_t d, int64_t V, int threads, bool backward,
                                             bool recompute_entropy);

// Plain unfused references: full logits row in double, double accumulation everywhere. Same contracts
// (the backward recomputes lse and entropy itself, so it takes neither).
void fused_linear_logprob_forward_ref(const float* h, const float* W, const int32_t* targets, int64_t N,
                                      int64_t d, int64_t V, float temperature, float* logp, float* entropy,
                                      float* lse);
void fused_linear_logprob_backward_ref(const float* h, const float* W, const int32_t* targets,
                                       const float* dlogp, const float* dentropy, int64_t N, int64_t d,
                                       int64_t V, float temperature, float* dh, float* dW, bool accumulate_dh);

}  // namespace medgym
