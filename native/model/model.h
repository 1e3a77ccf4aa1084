// medgym-vlm (SPEC §1) on the CPU kernels: packed ragged batches, per-token log-probs through the
// fused head, full backward, AdamW. No N-API here (native/addon/policy_binding.cc wraps it).
//
// Rows. A batch's sequences are packed along one row axis: every expanded position (a text token,
// or one of the N_p patches an <|image|> expands to) is a row of [N, d] activations, so GEMM,
// LayerNorm and GELU run over all rows at once; attention runs per sequence on strided views.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "model/config.h"
#include "model/kv_cache.h"
#include "model/params.h"

namespace medgym::model {

class Accelerator;        // model/accelerator.h
struct AcceleratorCache;

// One sequence's new rows in a packed forward: `n_tokens` ids (IMAGE_ID expands to N_p rows, taking
// the next image of `pixels`, HWC uint8 views of S*S*C bytes) at absolute positions past, past+1, ...
struct SeqInput {
  const int32_t* tokens = nullptr;
  int64_t n_tokens = 0;
  const uint8_t* pixels = nullptr;
  int64_t past = 0;           // positions already in `cache` (0 without a cache)
  KVCache* cache = nullptr;   // null: attention over these rows only (training / scoring); extend() needs one
  const int32_t* mask = nullptr;  // scoring only: tokens to score (null: all)
};

// Shared-prefix packing (training forward): the sequences `seqs` (indices into the batch) hold the
// same first `length` tokens (ids, images, mask), so those rows are computed once (native/model/prefix.cc).
struct PrefixGroup {
  std::vector<int64_t> seqs;
  int64_t length = 0;
};

// Row bookkeeping of one packed forward.
struct Packed {
  int64_t N = 0;                     // rows
  std::vector<int64_t> row0, nrows;  // per sequence
  std::vector<int32_t> row_token;    // text id, or -1 for a patch row
  std::vector<int32_t> row_pos;      // absolute position (wpe row)
  std::vector<int32_t> row_patch;    // patch index j for patch rows, -1 otherwise
  std::vector<int64_t> patch_rows;   // rows of all patches, in image order (n_patches)
  std::vector<float> patches;        // [n_patches, C*P*P] flattened, x/255*2-1
  // Scoring: per row, the target id it predicts (-1: none) and the global token index it scores.
  std::vector<int32_t> targets;
  std::vector<int64_t> target_token;
  int64_t scored = 0;
  // Shared prefixes (empty when nothing is shared). row0/nrows then index segments: a prefix, a
  // member's continuation or an unshared sequence; segment s also attends to every row of segment
  // prefix_of[s] (-1: none). A prefix row's target is scored once for all members: the output
  // tokens beyond target_token[r] are extra_tok[extra_off[r] .. extra_off[r + 1]).
  std::vector<int64_t> prefix_of;
  std::vector<int64_t> extra_off, extra_tok;
};

// Activations of one forward. Kept (one set per layer) only for a backward; otherwise one set is
// reused by every layer and the residual stream is updated in place.
struct Acts {
  bool keep = false;
  int64_t N = 0;
  std::vector<float> buf;
  struct Layer {
    float *x_in, *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *lse, *x_mid, *ln2, *ln2_mean, *ln2_rstd, *fch, *fch_gelu,
        *x_out;
  };
  std::vector<Layer> layers;
  float *x0, *lnf, *lnf_mean, *lnf_rstd;  // embedding output, final LayerNorm
  float *head_lse, *head_entropy;          // per row
  void allocate(const Config& c, int64_t N, bool keep);
  static int64_t floats_per_row(const Config& c, bool keep);
};

struct AdamHyper {
  double lr = 3e-4, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01, max_grad_norm = 1.0;
  bool zero_grad = true;
};
struct StepInfo {
  int64_t step;
  double grad_norm;
  bool clipped, finite;
};

class Model {
 public:
  // init: GPT-2 initialization from `seed`; otherwise zeros (the caller loads weights).
  Model(const Config& c, uint64_t seed, bool init = true);
  ~Model();
  const Config cfg;
  const Layout layout;
  std::vector<float> params, grads, m, v;
  int64_t step_count = 0;

  // Checks ids, image counts and lengths of a batch; throws std::out_of_range / invalid_argument.
  void validate(const std::vector<SeqInput>& seqs, int64_t n_images_given) const;
  int64_t expanded_length(const int32_t* tokens, int64_t n) const;

  // Scoring forward: logp/entropy per token (flat over the sequences' tokens, 0 where unscored).
  // keep: save the activations for backward(). Returns the number of scored tokens. `groups`: shared
  // prefixes (checked by validate_groups), computed once; the outputs are those of the unshared batch.
  int64_t forward(const std::vector<SeqInput>& seqs, float temperature, bool want_entropy, bool keep, float* logp,
                  float* entropy, const std::vector<PrefixGroup>& groups = {});
  // Checks prefix groups against their batch; throws std::out_of_range naming `prefixGroup` / `prefixLength`.
  void validate_groups(const std::vector<SeqInput>& seqs, const std::vector<PrefixGroup>& groups) const;
  // Rows (expanded positions) a forward with these groups computes.
  int64_t packed_rows(const std::vector<SeqInput>& seqs, const std::vector<PrefixGroup>& groups) const;
  // Backward of Σ dlogp·logp + dentropy·entropy (per token, flat as forward's outputs) through the
  // saved activations; gradients accumulate. Frees the activations.
  void backward(const float* dlogp, const float* dentropy);
  bool has_saved() const;
  void drop_saved();
  // SFT: forward + backward of the mean (or sum) cross-entropy of the scored tokens, times scale.
  double cross_entropy(const std::vector<SeqInput>& seqs, bool mean, double scale, int64_t* count);

  StepInfo step(const AdamHyper& hp);
  void zero_grad();

  // Generation (extend.cc): runs the new rows of each sequence (at least one token each) through the
  // model, appending K/V to the caches, and writes the logits [n_seq, V] of each sequence's last row;
  // then calls after(s) (if given) for each sequence s, possibly on a pool thread (sequences are
  // independent). A row's results do not depend on the other sequences of the call, nor on the
  // thread count (SPEC §7).
  void extend(const std::vector<SeqInput>& seqs, float* logits, const std::function<void(int64_t)>& after = {});

  // Set: the methods above run on this device (model/accelerator.h) and params/grads/m/v are empty.
  std::unique_ptr<Accelerator> accel;
  // Packs a batch's rows (used by accelerators too).
  void pack(const std::vector<SeqInput>& seqs, Packed& pk, bool scoring) const;

  std::atomic<bool> busy{false};
  // Bumped whenever the weights change (optimizer step, a write): sessions built on older weights
  // refuse to continue (their KV caches would be stale).
  std::atomic<uint64_t> weights_version{0};

 private:
  // pack() of the segments of a batch with shared prefixes (prefix.cc); fills `segs`.
  void pack_shared(const std::vector<SeqInput>& seqs, const std::vector<PrefixGroup>& groups, Packed& pk,
                   std::vector<SeqInput>& segs) const;
  void trunk(const std::vector<SeqInput>& seqs, const Packed& pk, Acts& a);
  struct Saved;
  std::unique_ptr<Saved> saved_;
  std::unique_ptr<Saved> spare_;  // buffers of a consumed forward, reused by the next one
  std::vector<float> bw_scratch_;  // backward's per-layer gradient buffers, reused
  Packed gen_pk_;   // generation scratch, reused by extend() (no allocation per decode step)
  Acts gen_acts_;
  std::vector<int64_t> gen_patch0_, gen_cost_;
  std::vector<std::vector<KVExtent>> gen_extents_;
};

}  // namespace medgym::model
