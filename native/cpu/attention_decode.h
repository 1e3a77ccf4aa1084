// Causal attention for a few new queries over a KV cache (the decode step of generation), one
// sequence at a time: query i (absolute position past + i, past = Tk - Tq) attends keys 0..past+i.
//   s_j = scale q·k_j,  out = Σ_j softmax(s)_j v_j,  lse = log Σ_j exp(s_j)
// Same views and semantics as attention_forward (attention.h) with B = 1 and no key mask, but it
// walks the cache row by row instead of in 32-query blocks, so a single query costs O(Tk·hd)
// instead of a padded 32-row tile. Serial (callers parallelize over sequences); `scores` is
// caller-provided scratch of at least H*Tk floats. attention_decode_paged (below) is the same over a
// paged cache whose blocks sequences may share: the generation engine's (native/model/extend.cc).
#pragma once
#include <cstdint>

#include "cpu/attention.h"

namespace medgym {

void attention_decode(int64_t H, int64_t Tq, int64_t Tk, int64_t hd, AttnViewOut out, float* lse /*[H,Tq], nullable*/,
                      AttnView q, AttnView k, AttnView v, float scale, float* scores);
// Plain scalar reference (double accumulation).
void attention_decode_ref(int64_t H, int64_t Tq, int64_t Tk, int64_t hd, AttnViewOut out, float* lse, AttnView q,
                          AttnView k, AttnView v, float scale);

// The same decode attention over a paged KV cache, for nq query rows. Query i (H heads of hd floats
// at q + i*q_stride) attends keys 0..n_keys[i]-1, which lie in its extents in order: extent e holds
// the next `rows` keys in rows 0..rows-1 of its block, a block of `cap` rows per slot: the K row r of
// head h is at block + ((k_slot + h)*cap + r)*hd and the V row at block + ((v_slot + h)*cap + r)*hd.
//   s_j = scale q·k_j,  out = Σ_j softmax(s)_j v_j,  lse (nullable) [nq, H] = log Σ_j exp(s_j)
// Every extent but a query's last holds a multiple of 8 rows; then a query's arithmetic depends only
// on its q, its keys and values and n_keys[i] — not on how its keys are split into extents (keys are
// scored 8 at a time at absolute positions 0, 8, 16, ...), nor on the other queries. So sequences
// that share a prompt's blocks (a fork) compute exactly what they would with copies of their own.
// Queries run one after the other (siblings that share blocks find them hot in cache); serial:
// callers parallelize over query sets. `scratch`: at least max(n_keys) floats.
struct KVExtent {
  const float* block;
  int64_t rows, cap;  // keys held; rows per slot of the block
};
struct PagedKV {
  const KVExtent* const* extents;  // per query: its extents, in key order
  int64_t k_slot, v_slot;          // slots of head 0's K and V rows in every block
};
void attention_decode_paged(int64_t nq, int64_t H, int64_t hd, const float* q, int64_t q_stride, const int64_t* n_keys,
                            const PagedKV& kv, float scale, float* out, int64_t out_stride, float* lse, float* scratch);
// Plain scalar reference (double accumulation).
void attention_decode_paged_ref(int64_t nq, int64_t H, int64_t hd, const float* q, int64_t q_stride,
                                const int64_t* n_keys, const PagedKV& kv, float scale, float* out, int64_t out_stride,
                                float* lse);

}  // namespace medgym
