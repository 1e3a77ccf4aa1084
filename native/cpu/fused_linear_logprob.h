// Fused linear + log-softmax + gather (+ entropy), forward and backward (SPEC §1: logits = ln_f(x) @ wte^T).
//
// Inputs: hidden states h [N,d], output weight W [V,d] (row-major, torch Linear layout: logits = h @ W^T),
// targets [N] (int32; target < 0 marks an ignored row) and a temperature tau > 0. With z = logits / tau:
//   logp[i]    = z[i,t_i] - lse[i],       lse[i] = logsumexp_k z[i,k]
//   entropy[i] = -sum_k p log p = lse[i] - E_p[z],   p = softmax(z[i,:])
// Ignored rows get logp = entropy = lse = 0 and no gradient.
//
// Neither pass materializes the N x V logits. Two schedules ("splits"), picked per call by
// fused_linear_logprob_plan (or forced with `split`):
//
// ROW SPLIT (small vocabularies; auto when V <= kFusedLogprobRowsMaxVocab and the dW partials are small:
// 4 T V d <= kFusedLogprobRowsMaxPartialBytes). The active rows (ignored rows skipped) are split into one
// contiguous share per thread (T = min(threads, max(1, N / kFusedLogprobRowsMinRows))), walked in blocks
// of R rows, R = the largest multiple of 8 with R x V floats <= kFusedLogprobRowsTileBytes (kept in L2),
// clamped to [8, kFusedLogprobRowBlock] and to the thread's share. Per block, one sgemm gives the full
// logits rows [R x V] (no online rescaling): the forward takes max / sum / entropy of each row; the
// backward turns the tile into dlogits in place (formula below), then
//      dW_t += dlogits^T @ h_block   (thread 0 adds straight into dW, thread t > 0 into a private [V,d]
//                                     partial, added to dW in thread order at the end), and
//      dh[rows] = dlogits @ W        (each thread owns its rows: written directly, no partials).
// The backward never recomputes the entropy by a separate pass (it is taken from the tile with the
// forward's arithmetic, so it has the same bits as the forward's).
//
// VOCAB SPLIT (large vocabularies). Rows are taken in macro-blocks of up to kFusedLogprobRowBlock active
// rows; inside a macro-block the vocabulary is split into one contiguous range per thread (multiples of
// 16 columns), walked in chunks of at most kFusedLogprobVocabChunk columns. Per (thread, chunk) the
// logits tile [rows x chunk] is computed with sgemm.
//  - forward: an online logsumexp per row keeps the running max m, s = sum e^{z-m} and
//    u = sum e^{z-m} (z-m) (relative to m, so that entropy = log s - u/s adds two non-negative terms and
//    never cancels); per-thread partials are combined in thread order.
//  - backward: per tile, recompute z (GEMM 1), turn it in place into
//      dlogits = dz / tau,  dz_k = dlogp (1[k=t] - p_k) - dentropy p_k (z_k - E_p[z]),  E_p[z] = lse - entropy,
//    then dW[chunk] += dlogits^T @ h_block (GEMM 2; each thread owns its vocab rows of dW, so no race) and
//    dh_partial[thread] += dlogits @ W[chunk] (GEMM 3). The partials are summed in thread order.
//
// Determinism: results are bit-identical from call to call, sync or async, for a given thread count,
// SIMD level and split. Changing the thread count changes the rounding (not the math) of:
//  - row split: dW (one partial per thread, summed in thread order); logp / entropy / lse / dh only
//    through the GEMM tile shapes (block boundaries move with each thread's share of rows);
//  - vocab split: everything (vocab ranges, thread-order combination of row statistics and dh partials).
// With split = Auto the split itself, R and T depend on the thread count too.
//
// Workspace (bytes, allocated per call and freed before returning), T = threads of the plan.
// Row split, with L = V rounded up to 16 (the tile row stride):
//   forward:  4 N (active row list) + T (4 R d (gathered rows) + 4 R L (logits tile))
//   backward: forward + 4 (T - 1) V d (dW partials; thread 0 adds into dW) + T; forward_backward: the same
// i.e. O(T V d) <= kFusedLogprobRowsMaxPartialBytes + small terms whenever Auto picks it (never at
// V > kFusedLogprobRowsMaxVocab, so the large-V memory bound below is untouched).
// Vocab split, R = min(kFusedLogprobRowBlock, N) rows per macro-block,
// C = min(kFusedLogprobVocabChunk, 16 * ceil(ceil(V/16) / T)):
//   forward:  4 R d (gathered rows) + 4 T R C (logits tiles) + 24 T R (row partials) + 12 R
//   backward: 4 R d + 4 T R C + 4 T R d (dh partials) + 28 R + T
//             + when dentropy is given without entropy: the entropy is recomputed by a forward pass first,
//               peak max(8 N + forward, 4 N + backward)
//   forward_backward: 4 Rc d + 4 Rc L' + 24 T Rc + 4 Rc + 4 T Rc d + 28 Rc + T (L' = V rounded up to 16;
//                     the backward's terms with the block's full logits instead of the T tiles), or, when
//                     Rc = 0, 8 N + max(forward, backward)
// i.e. O(T R (C + d)): independent of V once V >= C T, and never N x V. (sgemm keeps its own
// per-thread packing buffers besides, reused across calls.)
// fused_linear_logprob_workspace_bytes returns these numbers.
#pragma once
#include <cstdint>

namespace medgym {

constexpr int64_t kFusedLogprobRowBlock = 256;
constexpr int64_t kFusedLogprobVocabChunk = 256;
constexpr int64_t kFusedLogprobRowsMaxVocab = 4096;
constexpr int64_t kFusedLogprobRowsMaxPartialBytes = int64_t(16) << 20;  // 4 T V d
constexpr int64_t kFusedLogprobRowsTileBytes = int64_t(256) << 10;       // R x V logits tile per thread
constexpr int64_t kFusedLogprobRowsMinRows = 16;                         // rows per thread at least

enum class FusedLogprobSplit { Auto = 0, Rows = 1, Vocab = 2 };

struct FusedLogprobPlanInfo {
  FusedLogprobSplit split;  // Rows or Vocab (never Auto)
  int64_t rows;             // R
  int64_t chunk;            // C (V for the row split)
  int threads;              // T
  int64_t combined_rows;    // rows per block of the single-sweep forward_backward (0: it runs 2 sweeps)
};

// The schedule a call with these dims and `threads` threads uses (split = Auto: chosen as above).
FusedLogprobPlanInfo fused_linear_logprob_plan(int64_t N, int64_t d, int64_t V, int threads,
                                               FusedLogprobSplit split = FusedLogprobSplit::Auto);

// logp [N] is required; entropy [N] and lse [N] may be null (lse is what the backward needs).
void fused_linear_logprob_forward(const float* h, const float* W, const int32_t* targets, int64_t N, int64_t d,
                                  int64_t V, float temperature, float* logp, float* entropy, float* lse,
                                  FusedLogprobSplit split = FusedLogprobSplit::Auto);

// The forward with W [V,d] in bf16 (bits as uint16_t; inference on bf16 checkpoints): the logits tiles
// come from sgemm_bf16w (gemm_bf16.h), i.e. the bits of this forward on the widened W whenever the
// fp32 tiles take sgemm's packed path.
void fused_linear_logprob_forward_bf16w(const float* h, const uint16_t* W, const int32_t* targets, int64_t N,
                                        int64_t d, int64_t V, float temperature, float* logp, float* entropy,
                                        float* lse, FusedLogprobSplit split = FusedLogprobSplit::Auto);

// Gradients of  sum_i dlogp[i] logp[i] + dentropy[i] entropy[i]  (either of dlogp / dentropy may be null,
// meaning zero). lse [N] comes from the forward. entropy [N] (from the forward) is used only when dentropy
// is given; when it is null then, it is recomputed by a forward pass (costs one more GEMM sweep).
// dh [N,d] is overwritten (ignored rows get 0) or, with accumulate_dh, incremented (ignored rows untouched).
// dW [V,d] is always incremented (gradient accumulation across micro-batches).
void fused_linear_logprob_backward(const float* h, const float* W, const int32_t* targets, const float* lse,
                                   const float* entropy, const float* dlogp, const float* dentropy, int64_t N,
                                   int64_t d, int64_t V, float temperature, float* dh, float* dW,
                                   bool accumulate_dh, FusedLogprobSplit split = FusedLogprobSplit::Auto);

// Forward and backward in one call, for callers that know the upstream gradient at forward time (SFT
// cross-entropy: dlogp = -1 / count, no dentropy). Same outputs and contracts as the two calls above
// (logp required; entropy / lse may be null; dlogp / dentropy null = zero). 3 GEMM sweeps instead of 4:
// the logits of a row block are computed once, give the row statistics, and are turned into dlogits.
//  - row split: the per-thread [R x V] tile does it; bit-identical to forward then backward (same split).
//  - vocab split: macro-blocks of Rc = min(R, floor(N / 64) * 8) rows (the plan's combined_rows) keep
//    their full logits [Rc x V] between the forward sweep (online statistics, thread-order combination)
//    and the backward sweep; 4 Rc V <= N V / 2 bytes, half the 1/8-of-unfused budget. When Rc < 8
//    (N < 64) it runs forward then backward (4 sweeps). Rounding may differ from the separate calls in
//    the last bits (other macro-blocks: other GEMM shapes).
void fused_linear_logprob_forward_backward(const float* h, const float* W, const int32_t* targets, int64_t N,
                                           int64_t d, int64_t V, float temperature, const float* dlogp,
                                           const float* dentropy, float* logp, float* entropy, float* lse,
                                           float* dh, float* dW, bool accumulate_dh,
                                           FusedLogprobSplit split = FusedLogprobSplit::Auto);

// Peak workspace in bytes of one call with `threads` threads (see the formulas above).
int64_t fused_linear_logprob_workspace_bytes(int64_t N, int64_t d, int64_t V, int threads, bool backward,
                                             bool recompute_entropy,
                                             FusedLogprobSplit split = FusedLogprobSplit::Auto);
int64_t fused_linear_logprob_forward_backward_workspace_bytes(int64_t N, int64_t d, int64_t V, int threads,
                                                              FusedLogprobSplit split = FusedLogprobSplit::Auto);

// Plain unfused references: full logits row in double, double accumulation everywhere. Same contracts
// (the backward recomputes lse and entropy itself, so it takes neither).
void fused_linear_logprob_forward_ref(const float* h, const float* W, const int32_t* targets, int64_t N,
                                      int64_t d, int64_t V, float temperature, float* logp, float* entropy,
                                      float* lse);
void fused_linear_logprob_backward_ref(const float* h, const float* W, const int32_t* targets,
                                       const float* dlogp, const float* dentropy, int64_t N, int64_t d,
                                       int64_t V, float temperature, float* dh, float* dW, bool accumulate_dh);

}  // namespace medgym
