// Shared-prefix packing of a training forward (internal to native/model; see prefix.cc).
//
// A group of sequences with the same first `length` tokens is packed as one prefix segment (tokens
// [0, length - 1)) and one continuation segment per member (tokens [length - 1, n), positions
// continuing from the prefix's rows). The prefix's last token is left to the continuations (one
// row each) so that every row predicts one target: the prefix's last row predicts token
// length - 1, the same id in every member. Attention is the only layer that mixes rows: a
// continuation's queries attend to all the prefix's keys and causally to their own; in the backward
// the prefix's dK/dV add up the contributions of every member.
#pragma once
#include <vector>

#include "model/model.h"

namespace medgym::model {

// True when the group shares rows (two members or more and a prefix segment of at least one token).
bool shares_rows(const PrefixGroup& g);

// Attention of a shared packing (pk.prefix_of non-empty), forward: atty/lse of every row.
void run_attention_shared(const Config& c, const Packed& pk, const float* qkv, float* atty, float* lse);
// Backward: writes dqkv (every row) from datty. `scratch` holds the prefix dK/dV of each
// continuation until they are added up in member order (deterministic); reused across calls.
void attention_backward_shared(const Config& c, const Packed& pk, const float* qkv, const float* atty,
                               const float* lse, const float* datty, float* dqkv, std::vector<float>& scratch);

// Head outputs per row -> per token of the batch (every member of a shared prefix row gets its value).
// row_entropy null: entropy (when non-null) gets 0.
void scatter_row_outputs(const Packed& pk, const float* row_logp, const float* row_entropy, float* logp,
                         float* entropy);
// Upstream gradients per token -> per row (a shared prefix row gets the sum over its members, in
// member order). dent_tok null: dent_rows is not written.
void gather_row_upstream(const Packed& pk, const float* dlogp_tok, const float* dent_tok, float* dlogp_rows,
                         float* dent_rows);

}  // namespace medgym::model
