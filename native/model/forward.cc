// Forward pass of medgym-vlm for scoring and training: embeddings (text + patches), L pre-LN blocks,
// ln_f and the fused log-prob head. (Generation over KV caches is extend.cc; the row packing is
// shared.)
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "cpu/attention.h"
#include "cpu/fused_linear_logprob.h"
#include "cpu/gelu.h"
#include "cpu/gemm.h"
#include "cpu/layernorm.h"
#include "cpu/threadpool.h"
#include "model/accelerator.h"
#include "model/model.h"
#include "model/model_internal.h"
#include "model/prefix.h"

namespace medgym::model {

constexpr float kLnEps = 1e-5f;
// Rows per thread at least, for the cheap row loops (bias, embeddings): a decode step's few rows
// then run without a thread-pool round trip.
constexpr int64_t kElementwiseRowChunk = 128;

int64_t Acts::floats_per_row(const Config& c, bool keep) {
  const int64_t d = c.d;
  const int64_t per_layer = d /*x_in*/ + d /*ln1*/ + 2 + 3 * d + d /*atty*/ + c.H + d /*x_mid*/ + d /*ln2*/ + 2 +
                            4 * d + 4 * d;
  // kept: x0 + per layer (x_in aliases the previous x_out) + final residual + ln_f + head stats
  if (keep) return per_layer * c.L + d /*x_L*/ + d + 2 + 2;
  return per_layer + d + 2 + 2;
}

void Acts::allocate(const Config& c, int64_t n, bool keep_) {
  keep = keep_;
  N = n;
  const int64_t d = c.d;
  // Every element is written before it is read, so a reused buffer is only grown, never cleared.
  const size_t need = static_cast<size_t>(floats_per_row(c, keep) * n);
  if (buf.size() < need) buf.resize(need);
  float* p = buf.data();
  auto take = [&](int64_t per_row) {
    float* r = p;
    p += per_row * n;
    return r;
  };
  layers.resize(c.L);
  x0 = take(d);
  for (int64_t l = 0; l < c.L; ++l) {
    Layer& L = layers[l];
    if (keep || l == 0) {
      L.x_in = l == 0 ? x0 : layers[l - 1].x_out;
      L.ln1 = take(d), L.ln1_mean = take(1), L.ln1_rstd = take(1), L.qkv = take(3 * d), L.atty = take(d),
      L.lse = take(c.H), L.x_mid = keep ? take(d) : x0, L.ln2 = take(d), L.ln2_mean = take(1), L.ln2_rstd = take(1),
      L.fch = take(4 * d), L.fch_gelu = take(4 * d);
      L.x_out = keep ? take(d) : x0;
    } else {
      L = layers[0];
    }
  }
  if (!keep) take(d);  // keeps floats_per_row exact (x_in slot of the shared layer)
  lnf = take(d), lnf_mean = take(1), lnf_rstd = take(1), head_lse = take(1), head_entropy = take(1);
}

int64_t Model::expanded_length(const int32_t* tokens, int64_t n) const {
  int64_t len = 0;
  for (int64_t i = 0; i < n; ++i) len += tokens[i] == cfg.image_id ? cfg.Np() : 1;
  return len;
}

void Model::validate(const std::vector<SeqInput>& seqs, int64_t n_images_given) const {
  int64_t images = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    const SeqInput& q = seqs[s];
    for (int64_t i = 0; i < q.n_tokens; ++i) {
      int32_t id = q.tokens[i];
      if (id < 0 || id >= cfg.V)
        throw std::out_of_range("Expected token ids in [0, " + std::to_string(cfg.V) + ") for `tokens` but sequence " +
                                std::to_string(s) + " has " + std::to_string(id) + " at position " + std::to_string(i));
      if (id == cfg.image_id) ++images;
    }
    int64_t len = q.past + expanded_length(q.tokens, q.n_tokens);
    if (len > cfg.T)
      throw std::out_of_range("sequence " + std::to_string(s) + " expands to " + std::to_string(len) +
                              " positions (each <|image|> is " + std::to_string(cfg.Np()) +
                              "), more than max_seq " + std::to_string(cfg.T) + " (`tokens`)");
  }
  if (images != n_images_given)
    throw std::out_of_range("Expected one image per <|image|> token: `tokens` hold " + std::to_string(images) +
                            " but `images` has " + std::to_string(n_images_given));
}

void Model::pack(const std::vector<SeqInput>& seqs, Packed& pk, bool scoring) const {
  const int64_t Np = cfg.Np(), P = cfg.P, S = cfg.S, C = cfg.C, G = cfg.grid(), cpp = cfg.cpp();
  pk.row0.resize(seqs.size());
  pk.nrows.resize(seqs.size());
  int64_t N = 0, n_img = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    pk.row0[s] = N;
    pk.nrows[s] = expanded_length(seqs[s].tokens, seqs[s].n_tokens);
    N += pk.nrows[s];
    for (int64_t i = 0; i < seqs[s].n_tokens; ++i) n_img += seqs[s].tokens[i] == cfg.image_id;
  }
  pk.N = N;
  pk.prefix_of.clear(), pk.extra_off.clear(), pk.extra_tok.clear();  // nothing shared (pack_shared sets them)
  pk.row_token.assign(N, -1);
  pk.row_pos.assign(N, 0);
  pk.row_patch.assign(N, -1);
  pk.patch_rows.clear();
  pk.patch_rows.reserve(n_img * Np);
  pk.patches.resize(n_img * Np * cpp);
  if (scoring) {
    pk.targets.assign(N, -1);
    pk.target_token.assign(N, -1);
    pk.scored = 0;
  }
  int64_t img = 0, tok_base = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    const SeqInput& q = seqs[s];
    int64_t r = pk.row0[s], simg = 0;
    for (int64_t i = 0; i < q.n_tokens; ++i) {
      const int32_t id = q.tokens[i];
      if (scoring && i > 0 && id != cfg.image_id && (!q.mask || q.mask[i] != 0)) {
        pk.targets[r - 1] = id;  // the previous position (last patch of an image too) predicts it
        pk.target_token[r - 1] = tok_base + i;
        ++pk.scored;
      }
      if (id != cfg.image_id) {
        pk.row_token[r] = id;
        pk.row_pos[r] = static_cast<int32_t>(q.past + (r - pk.row0[s]));
        ++r;
        continue;
      }
      const uint8_t* px = q.pixels + simg * cfg.image_bytes();
      for (int64_t j = 0; j < Np; ++j, ++r) {
        pk.row_patch[r] = static_cast<int32_t>(j);
        pk.row_pos[r] = static_cast<int32_t>(q.past + (r - pk.row0[s]));
        pk.patch_rows.push_back(r);
        float* dst = pk.patches.data() + (img * Np + j) * cpp;
        const int64_t py = j / G, pxi = j % G;
        for (int64_t c = 0; c < C; ++c)
          for (int64_t dy = 0; dy < P; ++dy)
            for (int64_t dx = 0; dx < P; ++dx) {
              uint8_t b = px[((py * P + dy) * S + (pxi * P + dx)) * C + c];
              dst[(c * P + dy) * P + dx] = static_cast<float>(b) / 255.0f * 2.0f - 1.0f;
            }
      }
      ++img, ++simg;
    }
    tok_base += q.n_tokens;
  }
}

// out[r, :] = b for every row (bias broadcast before a GEMM with beta = 1).
static void fill_bias(float* out, const float* b, int64_t N, int64_t n) {
  parallel_for(N, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) std::memcpy(out + r * n, b, n * sizeof(float));
  }, kElementwiseRowChunk);
}
// out[r, :] = x[r, :] + b (out may alias x).
static void add_bias(float* out, const float* x, const float* b, int64_t N, int64_t n) {
  parallel_for(N, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t i = 0; i < n; ++i) out[r * n + i] = x[r * n + i] + b[i];
  }, kElementwiseRowChunk);
}

void run_attention(const Config& c, const std::vector<SeqInput>& seqs, const Packed& pk, int64_t layer,
                   const float* qkv, float* atty, float* lse) {
  const int64_t d = c.d, H = c.H, hd = c.hd();
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  auto one = [&](size_t s) {
    const SeqInput& q = seqs[s];
    const int64_t r0 = pk.row0[s], n = pk.nrows[s];
    if (n == 0) return;
    AttnDims dims{1, H, n, q.past + n, hd};
    AttnView qv{qkv + r0 * 3 * d, 0, 3 * d, hd};
    AttnViewOut ov{atty + r0 * d, 0, d, hd};
    float* l = lse + H * r0;
    // Training and scoring only: the generation path (extend.cc) has its own, over the KV cache.
    attention_forward(dims, ov, l, qv, AttnView{qkv + r0 * 3 * d + d, 0, 3 * d, hd},
                      AttnView{qkv + r0 * 3 * d + 2 * d, 0, 3 * d, hd}, nullptr, scale);
  };
  if (seqs.size() == 1) {
    one(0);
  } else {
    parallel_for(static_cast<int64_t>(seqs.size()), [&](int64_t b, int64_t e) {
      for (int64_t s = b; s < e; ++s) one(static_cast<size_t>(s));
    });
  }
}

void Model::trunk(const std::vector<SeqInput>& seqs, const Packed& pk, Acts& a) {
  const int64_t N = pk.N, d = cfg.d, cpp = cfg.cpp();
  const float* P = params.data();
  // Embeddings: text rows wte[id] + wpe[pos]; patch rows patch_embed(patch) + bias + patch_pos[j] + wpe[pos].
  float* x = a.x0;
  parallel_for(N, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* pe = P + layout.wpe + static_cast<int64_t>(pk.row_pos[r]) * d;
      const float* te = pk.row_token[r] >= 0 ? P + layout.wte + static_cast<int64_t>(pk.row_token[r]) * d
                                              : P + layout.patch_pos + static_cast<int64_t>(pk.row_patch[r]) * d;
      const float* pb = pk.row_token[r] >= 0 ? nullptr : P + layout.patch_b;
      for (int64_t i = 0; i < d; ++i) x[r * d + i] = te[i] + pe[i] + (pb ? pb[i] : 0.0f);
    }
  }, kElementwiseRowChunk);
  const int64_t n_patch = static_cast<int64_t>(pk.patch_rows.size());
  if (n_patch > 0) {
    std::vector<float> tmp(n_patch * d);
    sgemm(false, true, n_patch, d, cpp, 1.0f, pk.patches.data(), cpp, P + layout.patch_w, cpp, 0.0f, tmp.data(), d);
    for (int64_t k = 0; k < n_patch; ++k) {
      float* row = x + pk.patch_rows[k] * d;
      for (int64_t i = 0; i < d; ++i) row[i] += tmp[k * d + i];
    }
  }
  for (int64_t l = 0; l < cfg.L; ++l) {
    const LayerOffsets& o = layout.layers[l];
    Acts::Layer& A = a.layers[l];
    layernorm_forward(A.ln1, A.ln1_mean, A.ln1_rstd, A.x_in, P + o.ln1_w, P + o.ln1_b, N, d, kLnEps);
    fill_bias(A.qkv, P + o.qkv_b, N, 3 * d);
    sgemm(false, true, N, 3 * d, d, 1.0f, A.ln1, d, P + o.qkv_w, d, 1.0f, A.qkv, 3 * d);
    if (pk.prefix_of.empty()) run_attention(cfg, seqs, pk, l, A.qkv, A.atty, A.lse);
    else run_attention_shared(cfg, pk, A.qkv, A.atty, A.lse);
    add_bias(A.x_mid, A.x_in, P + o.attn_proj_b, N, d);
    sgemm(false, true, N, d, d, 1.0f, A.atty, d, P + o.attn_proj_w, d, 1.0f, A.x_mid, d);
    layernorm_forward(A.ln2, A.ln2_mean, A.ln2_rstd, A.x_mid, P + o.ln2_w, P + o.ln2_b, N, d, kLnEps);
    fill_bias(A.fch, P + o.fc_b, N, 4 * d);
    sgemm(false, true, N, 4 * d, d, 1.0f, A.ln2, d, P + o.fc_w, d, 1.0f, A.fch, 4 * d);
    gelu_forward(A.fch_gelu, A.fch, N * 4 * d);
    add_bias(A.x_out, A.x_mid, P + o.mlp_proj_b, N, d);
    sgemm(false, true, N, d, 4 * d, 1.0f, A.fch_gelu, 4 * d, P + o.mlp_proj_w, 4 * d, 1.0f, A.x_out, d);
  }
}

int64_t Model::forward(const std::vector<SeqInput>& seqs, float temperature, bool want_entropy, bool keep, float* logp,
                       float* entropy, const std::vector<PrefixGroup>& groups) {
  if (accel) return accel->forward(seqs, temperature, want_entropy, keep, logp, entropy);  // groups: unshared
  if (saved_) spare_ = std::move(saved_);  // an unconsumed forward: its buffers are reused
  std::unique_ptr<Saved> sv = spare_ ? std::move(spare_) : std::make_unique<Saved>();
  std::vector<SeqInput> segs;  // with shared prefixes: the packed segments
  bool shared = false;
  for (const PrefixGroup& g : groups) shared = shared || shares_rows(g);
  if (shared) pack_shared(seqs, groups, sv->pk, segs);
  else pack(seqs, sv->pk, true);
  const Packed& pk = sv->pk;
  Acts& a = sv->acts;
  a.allocate(cfg, pk.N, keep);
  trunk(shared ? segs : seqs, pk, a);
  const int64_t N = pk.N, d = cfg.d;
  const float* xL = a.layers[cfg.L - 1].x_out;
  layernorm_forward(a.lnf, a.lnf_mean, a.lnf_rstd, xL, params.data() + layout.lnf_w, params.data() + layout.lnf_b, N,
                    d, kLnEps);
  std::vector<float> row_logp(N);
  fused_linear_logprob_forward(a.lnf, params.data() + layout.wte, pk.targets.data(), N, d, cfg.V, temperature,
                               row_logp.data(), keep || want_entropy ? a.head_entropy : nullptr, a.head_lse);
  scatter_row_outputs(pk, row_logp.data(), want_entropy ? a.head_entropy : nullptr, logp, entropy);
  const int64_t scored = pk.scored;
  if (keep) {
    sv->temperature = temperature;
    sv->tokens_total = 0;
    for (const SeqInput& q : seqs) sv->tokens_total += q.n_tokens;
    saved_ = std::move(sv);
  } else {
    spare_ = std::move(sv);
  }
  return scored;
}

}  // namespace medgym::model
