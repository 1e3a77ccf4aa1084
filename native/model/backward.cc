// Backward pass of medgym-vlm through the activations a forward(keep = true) saved, the SFT
// cross-entropy (a backward with dlogp = -1/count), and the optimizer update (clip + AdamW).
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "cpu/adamw.h"
#include "cpu/attention.h"
#include "cpu/fused_linear_logprob.h"
#include "cpu/gelu.h"
#include "cpu/gemm.h"
#include "cpu/grad_clip.h"
#include "cpu/layernorm.h"
#include "cpu/threadpool.h"
#include "model/accelerator.h"
#include "model/model.h"
#include "model/model_internal.h"
#include "model/prefix.h"

namespace medgym::model {

Model::Model(const Config& c, uint64_t seed, bool init) : cfg(c), layout(build_layout(c)) {
  params.assign(layout.total, 0.0f);
  grads.assign(layout.total, 0.0f);
  if (init) init_params(cfg, layout, seed, params.data());
}

Model::~Model() = default;
bool Model::has_saved() const { return accel ? accel->has_saved() : saved_ != nullptr; }
void Model::drop_saved() {
  if (accel) return accel->drop_saved();
  saved_.reset();
  spare_.reset();
  bw_scratch_.clear();
  bw_scratch_.shrink_to_fit();
}

// db[j] += Σ_r x[r, j]: each thread owns a range of columns and adds rows in order (deterministic).
static void colsum_add(float* db, const float* x, int64_t N, int64_t n) {
  parallel_for(n, [&](int64_t c0, int64_t c1) {
    for (int64_t r = 0; r < N; ++r) {
      const float* row = x + r * n;
      for (int64_t j = c0; j < c1; ++j) db[j] += row[j];
    }
  }, 64);
}

void Model::backward(const float* dlogp_tok, const float* dentropy_tok) {
  if (accel) return accel->backward(dlogp_tok, dentropy_tok);
  if (!saved_) throw std::invalid_argument("backward: no activations saved (call forward with requireGrad: true first)");
  std::unique_ptr<Saved> sv = std::move(saved_);
  const Packed& pk = sv->pk;
  Acts& a = sv->acts;
  const int64_t N = pk.N, d = cfg.d, H = cfg.H, hd = cfg.hd();
  const float* P = params.data();
  float* G = grads.data();

  // Head: per-row upstream gradients, then the fused backward (dh = d ln_f out, dwte += ...).
  std::vector<float> dlogp(N, 0.0f), dent;
  if (dentropy_tok) dent.assign(N, 0.0f);
  gather_row_upstream(pk, dlogp_tok, dentropy_tok, dlogp.data(), dentropy_tok ? dent.data() : nullptr);
  if (bw_scratch_.size() < static_cast<size_t>(14 * N * d)) bw_scratch_.resize(14 * N * d);
  struct Span {
    float* p;
    float* data() const { return p; }
  };
  float* base = bw_scratch_.data();
  Span dres{base}, dtmp{base + N * d}, datty{base + 2 * N * d}, dqkv{base + 3 * N * d}, dfc{base + 6 * N * d},
      dgelu{base + 10 * N * d};
  fused_linear_logprob_backward(a.lnf, P + layout.wte, pk.targets.data(), a.head_lse, a.head_entropy, dlogp.data(),
                                dentropy_tok ? dent.data() : nullptr, N, d, cfg.V, sv->temperature, dtmp.data(),
                                G + layout.wte, false);
  layernorm_backward(dres.data(), G + layout.lnf_w, G + layout.lnf_b, dtmp.data(), a.layers[cfg.L - 1].x_out,
                     P + layout.lnf_w, a.lnf_mean, a.lnf_rstd, N, d, false);

  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  for (int64_t l = cfg.L - 1; l >= 0; --l) {
    const LayerOffsets& o = layout.layers[l];
    const Acts::Layer& A = a.layers[l];
    // MLP: x_out = x_mid + c_proj(gelu(c_fc(ln_2(x_mid))))
    colsum_add(G + o.mlp_proj_b, dres.data(), N, d);
    sgemm(true, false, d, 4 * d, N, 1.0f, dres.data(), d, A.fch_gelu, 4 * d, 1.0f, G + o.mlp_proj_w, 4 * d);
    sgemm(false, false, N, 4 * d, d, 1.0f, dres.data(), d, P + o.mlp_proj_w, 4 * d, 0.0f, dgelu.data(), 4 * d);
    gelu_backward(dfc.data(), A.fch, dgelu.data(), N * 4 * d, false);
    colsum_add(G + o.fc_b, dfc.data(), N, 4 * d);
    sgemm(true, false, 4 * d, d, N, 1.0f, dfc.data(), 4 * d, A.ln2, d, 1.0f, G + o.fc_w, d);
    sgemm(false, false, N, d, 4 * d, 1.0f, dfc.data(), 4 * d, P + o.fc_w, d, 0.0f, dtmp.data(), d);
    layernorm_backward(dres.data(), G + o.ln2_w, G + o.ln2_b, dtmp.data(), A.x_mid, P + o.ln2_w, A.ln2_mean,
                       A.ln2_rstd, N, d, true);
    // Attention: x_mid = x_in + c_proj(attn(c_attn(ln_1(x_in))))
    colsum_add(G + o.attn_proj_b, dres.data(), N, d);
    sgemm(true, false, d, d, N, 1.0f, dres.data(), d, A.atty, d, 1.0f, G + o.attn_proj_w, d);
    sgemm(false, false, N, d, d, 1.0f, dres.data(), d, P + o.attn_proj_w, d, 0.0f, datty.data(), d);
    auto one = [&](int64_t s) {
      const int64_t r0 = pk.row0[s], n = pk.nrows[s];
      if (n == 0) return;
      AttnDims dims{1, H, n, n, hd};
      const float* q = A.qkv + r0 * 3 * d;
      float* dq = dqkv.data() + r0 * 3 * d;
      attention_backward(dims, AttnViewOut{dq, 0, 3 * d, hd}, AttnViewOut{dq + d, 0, 3 * d, hd},
                         AttnViewOut{dq + 2 * d, 0, 3 * d, hd}, AttnView{datty.data() + r0 * d, 0, d, hd},
                         AttnView{A.atty + r0 * d, 0, d, hd}, A.lse + H * r0, AttnView{q, 0, 3 * d, hd},
                         AttnView{q + d, 0, 3 * d, hd}, AttnView{q + 2 * d, 0, 3 * d, hd}, nullptr, scale, false);
    };
    const int64_t ns = static_cast<int64_t>(pk.row0.size());
    if (!pk.prefix_of.empty())
      attention_backward_shared(cfg, pk, A.qkv, A.atty, A.lse, datty.data(), dqkv.data(), sv->prefix_dkv);
    else if (ns == 1) one(0);
    else parallel_for(ns, [&](int64_t b, int64_t e) { for (int64_t s = b; s < e; ++s) one(s); });
    colsum_add(G + o.qkv_b, dqkv.data(), N, 3 * d);
    sgemm(true, false, 3 * d, d, N, 1.0f, dqkv.data(), 3 * d, A.ln1, d, 1.0f, G + o.qkv_w, d);
    sgemm(false, false, N, d, 3 * d, 1.0f, dqkv.data(), 3 * d, P + o.qkv_w, d, 0.0f, dtmp.data(), d);
    layernorm_backward(dres.data(), G + o.ln1_w, G + o.ln1_b, dtmp.data(), A.x_in, P + o.ln1_w, A.ln1_mean,
                       A.ln1_rstd, N, d, true);
  }

  // Embeddings: text rows -> wte[id], every row -> wpe[pos], patch rows -> patch_pos[j], bias, weight.
  float* dwte = G + layout.wte;
  float* dwpe = G + layout.wpe;
  float* dpos = G + layout.patch_pos;
  parallel_for(d, [&](int64_t c0, int64_t c1) {  // columns per thread: rows added in order
    for (int64_t r = 0; r < N; ++r) {
      const float* g = dres.data() + r * d;
      float* e = pk.row_token[r] >= 0 ? dwte + static_cast<int64_t>(pk.row_token[r]) * d
                                      : dpos + static_cast<int64_t>(pk.row_patch[r]) * d;
      float* w = dwpe + static_cast<int64_t>(pk.row_pos[r]) * d;
      for (int64_t j = c0; j < c1; ++j) e[j] += g[j], w[j] += g[j];
    }
  }, 64);
  const int64_t n_patch = static_cast<int64_t>(pk.patch_rows.size());
  if (n_patch > 0) {
    std::vector<float> dimg(n_patch * d);
    for (int64_t k = 0; k < n_patch; ++k) std::memcpy(dimg.data() + k * d, dres.data() + pk.patch_rows[k] * d, d * sizeof(float));
    colsum_add(G + layout.patch_b, dimg.data(), n_patch, d);
    sgemm(true, false, d, cfg.cpp(), n_patch, 1.0f, dimg.data(), d, pk.patches.data(), cfg.cpp(), 1.0f,
          G + layout.patch_w, cfg.cpp());
  }
  spare_ = std::move(sv);  // keep the buffers for the next forward
}

double Model::cross_entropy(const std::vector<SeqInput>& seqs, bool mean, double scale, int64_t* count) {
  if (accel) return accel->cross_entropy(seqs, mean, scale, count);
  int64_t total = 0;
  for (const SeqInput& q : seqs) total += q.n_tokens;
  std::vector<float> logp(total, 0.0f);
  int64_t scored = forward(seqs, 1.0f, false, true, logp.data(), nullptr);
  const Packed& pk = saved_->pk;
  double loss = 0;
  for (int64_t r = 0; r < pk.N; ++r)  // row order: deterministic
    if (pk.target_token[r] >= 0) loss -= logp[pk.target_token[r]];
  const double w = mean ? (scored > 0 ? 1.0 / static_cast<double>(scored) : 0.0) : 1.0;
  std::vector<float> dlogp(total, 0.0f);
  for (int64_t r = 0; r < pk.N; ++r)
    if (pk.target_token[r] >= 0) dlogp[pk.target_token[r]] = static_cast<float>(-w * scale);
  backward(dlogp.data(), nullptr);
  *count = scored;
  return loss * w;
}

void Model::zero_grad() {
  if (accel) return accel->zero_grad();
  std::fill(grads.begin(), grads.end(), 0.0f);
}

StepInfo Model::step(const AdamHyper& hp) {
  if (accel) return accel->step(hp);
  if (m.empty()) {
    m.assign(layout.total, 0.0f);
    v.assign(layout.total, 0.0f);
  }
  float* arr = grads.data();
  int64_t len = layout.total;
  StepInfo info{step_count, 0.0, false, true};
  if (hp.max_grad_norm > 0 && std::isfinite(hp.max_grad_norm)) {
    GradClipResult c = grad_clip(&arr, &len, 1, hp.max_grad_norm);
    info.grad_norm = c.norm, info.clipped = c.clipped, info.finite = c.finite;
  } else {
    const float* carr = arr;
    double ss = grad_sum_squares(&carr, &len, 1);
    info.grad_norm = std::sqrt(ss), info.finite = std::isfinite(ss);
  }
  if (info.finite) {
    ++step_count;
    ++weights_version;
    AdamWParams p;
    p.lr = hp.lr, p.beta1 = hp.beta1, p.beta2 = hp.beta2, p.eps = hp.eps, p.step = step_count;
    for (const TensorInfo& t : layout.tensors) {
      p.weight_decay = t.decay ? hp.weight_decay : 0.0;
      adamw_step(params.data() + t.offset, grads.data() + t.offset, m.data() + t.offset, v.data() + t.offset, t.size, p);
    }
  }
  info.step = step_count;
  if (hp.zero_grad || !info.finite) zero_grad();
  return info;
}

}  // namespace medgym::model
