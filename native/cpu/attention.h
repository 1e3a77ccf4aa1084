// Causal multi-head attention (SPEC §1), flash-attention style: the forward saves only the
// log-sum-exp of each query row; the backward recomputes the probabilities block by block.
//
// Tensors are strided views: element (b, t, h, d) of a view lives at data[b*sb + t*st + h*sh + d],
// d < hd contiguous. For GPT-2's fused c_attn output qkv [B,T,3C] the views are
//   q = {qkv, T*3C, 3C, hd}, k = {qkv + C, ...}, v = {qkv + 2C, ...}   (attention_*_qkv below).
// The same views describe a KV cache ([B,S,C] or head-major [B,H,S,hd]), so the decoder reuses it.
//
// Masking. Tq queries attend over Tk >= Tq keys; query i sits at absolute position i + (Tk - Tq)
// (the last Tq positions: Tq == Tk in training, Tq < Tk when decoding with cached keys). Query i
// attends key j iff j <= i + Tk - Tq and (key_mask == nullptr or key_mask[b*Tk + j] != 0).
// A query with no key to attend outputs 0, gets lse = -inf, and neither receives nor passes gradient.
// Masked keys get probability exactly 0, but their k/v rows are still read (0 * v): they must be
// finite, as in PyTorch's masked softmax @ v. Cache rows at or after Tk are never read.
#pragma once
#include <cstdint>

namespace medgym {

struct AttnView {  // read-only operand
  const float* data;
  int64_t sb, st, sh;
};
struct AttnViewOut {  // written operand
  float* data;
  int64_t sb, st, sh;
};
struct AttnDims {
  int64_t B, H, Tq, Tk, hd;
};

// out = softmax(scale * q k^T + causal/key mask) v;  lse [B,H,Tq] (may be null) = log Σ_j exp(scale q·k_j).
// Parallel over (b, h, block of 32 queries), static partition.
void attention_forward(const AttnDims& dims, AttnViewOut out, float* lse, AttnView q, AttnView k, AttnView v,
                       const int32_t* key_mask, float scale);
// Gradients from dout, the forward's out and lse: with P recomputed as exp(scale q·k - lse),
//   D_i = dout_i·out_i, dS = P ⊙ (dout v^T - D), dq = scale dS k, dk = scale dS^T q, dv = P^T dout.
// accumulate: add into dq/dk/dv; otherwise overwrite them (every element of the views is written).
// Parallel over (b, h) pairs, static partition. dq/dk/dv must not overlap each other or the inputs.
void attention_backward(const AttnDims& dims, AttnViewOut dq, AttnViewOut dk, AttnViewOut dv, AttnView dout,
                        AttnView out, const float* lse, AttnView q, AttnView k, AttnView v,
                        const int32_t* key_mask, float scale, bool accumulate);

// GPT-2 layout: qkv [B,T,3C] (q, k, v thirds; head h = columns h*hd..(h+1)*hd of each third),
// out/dout [B,T,C], lse [B,H,T], key_mask [B,T] or null, dqkv [B,T,3C]; scale = 1/sqrt(C/H).
void attention_forward_qkv(float* out, float* lse, const float* qkv, const int32_t* key_mask, int64_t B,
                           int64_t T, int64_t C, int64_t H);
void attention_backward_qkv(float* dqkv, const float* dout, const float* qkv, const float* out,
                            const float* lse, const int32_t* key_mask, int64_t B, int64_t T, int64_t C,
                            int64_t H, bool accumulate);

// Plain scalar references: query row by row, double accumulation, same semantics.
void attention_forward_ref(const AttnDims& dims, AttnViewOut out, float* lse, AttnView q, AttnView k, AttnView v,
                           const int32_t* key_mask, float scale);
void attention_backward_ref(const AttnDims& dims, AttnViewOut dq, AttnViewOut dk, AttnViewOut dv, AttnView dout,
                            AttnView out, const float* lse, AttnView q, AttnView k, AttnView v,
                            const int32_t* key_mask, float scale, bool accumulate);
// The references in the GPT-2 qkv layout (the same views as attention_*_qkv above).
void attention_forward_qkv_ref(float* out, float* lse, const float* qkv, const int32_t* key_mask, int64_t B,
                               int64_t T, int64_t C, int64_t H);
void attention_backward_qkv_ref(float* dqkv, const float* dout, const float* qkv, const float* out,
                                const float* lse, const int32_t* key_mask, int64_t B, int64_t T, int64_t C,
                                int64_t H, bool accumulate);

}  // namespace medgym
