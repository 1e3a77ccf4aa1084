// Causal attention for a few new queries over a KV cache (the decode step of generation), one
// sequence at a time: query i (absolute position past + i, past = Tk - Tq) attends keys 0..past+i.
//   s_j = scale q·k_j,  out = Σ_j softmax(s)_j v_j,  lse = log Σ_j exp(s_j)
// Same views and semantics as attention_forward (attention.h) with B = 1 and no key mask, but it
// walks the cache row by row instead of in 32-query blocks, so a single query costs O(Tk·hd)
// instead of a padded 32-row tile. Serial (callers parallelize over sequences); `scores` is
// caller-provided scratch of at least H*Tk floats.
#pragma once
#include <cstdint>

#include "cpu/attention.h"

namespace medgym {

void attention_decode(int64_t H, int64_t Tq, int64_t Tk, int64_t hd, AttnViewOut out, float* lse /*[H,Tq], nullable*/,
                      AttnView q, AttnView k, AttnView v, float scale, float* scores);
// Plain scalar reference (double accumulation).
void attention_decode_ref(int64_t H, int64_t Tq, int64_t Tk, int64_t hd, AttnViewOut out, float* lse, AttnView q,
                          AttnView k, AttnView v, float scale);

}  // namespace medgym
