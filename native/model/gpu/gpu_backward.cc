// CudaModel backward: the CPU's backward.cc on the device, through the activations forward(keep)
// left in train_, then the SFT cross-entropy (a forward + a backward with dlogp = -1/count, as the
// CPU). Gradients accumulate into G in fp32 in both modes; with bf16 the GEMMs read bf16 copies of
// their operands (the upstream gradient is rounded to bf16 once per GEMM input).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "cuda/rowops.h"
#include "model/gpu/gpu_model.h"
#include "model/prefix.h"

namespace medgym::model::gpu {

void CudaModel::drop_saved() {
  activate();
  saved_ = false;
  train_ = Batch{};
  grad_f32_ = Arena<float>{};
  grad_b16_ = Arena<Bf16>{};
}

void CudaModel::backward(const float* dlogp_tok, const float* dentropy_tok) {
  if (!saved_) throw std::invalid_argument("backward: no activations saved (call forward with requireGrad: true first)");
  activate();
  saved_ = false;
  const Batch& b = train_;
  const Packed& pk = b.pk;
  const GpuActs& a = b.acts;
  const int64_t N = pk.N, d = c_.d, n_patch = static_cast<int64_t>(pk.patch_rows.size());
  GpuGrads g;
  size_t nf = 0, nh = 0;
  g.plan(c_, N, n_patch, bf16_, nullptr, nullptr, &nf, &nh);
  float* fbase = grad_f32_.get(nf);
  Bf16* hbase = bf16_ ? grad_b16_.get(nh) : nullptr;
  g.plan(c_, N, n_patch, bf16_, fbase, hbase, &nf, &nh);

  // Head: per-row upstream gradients (host, as the CPU), then the fused backward: dh, dwte += ...
  std::vector<float> dl(N, 0.0f), de(dentropy_tok ? N : 0, 0.0f);
  gather_row_upstream(pk, dlogp_tok, dentropy_tok, dl.data(), dentropy_tok ? de.data() : nullptr);
  cuda::copy_to_device(g.dlogp, dl.data(), N * sizeof(float), st_);
  if (dentropy_tok) cuda::copy_to_device(g.dent, de.data(), N * sizeof(float), st_);
  const float* dent = dentropy_tok ? g.dent : nullptr;
  const int32_t* targets = b.targets.buf.get();
  const float* P = P_.get();
  float* G = G_.get();
  if (bf16_)
    cuda::fused_linear_logprob_backward_bf16(a.lnf_b, Pb_.get() + lay_.wte, targets, a.head_lse, a.head_entropy,
                                             g.dlogp, dent, N, d, c_.V, temperature_, g.dtmp, G + lay_.wte, false, st_);
  else
    cuda::fused_linear_logprob_backward(a.lnf, P + lay_.wte, targets, a.head_lse, a.head_entropy, g.dlogp, dent, N, d,
                                        c_.V, temperature_, g.dtmp, G + lay_.wte, false, st_);
  cuda::layernorm_backward(g.dres, G + lay_.lnf_w, G + lay_.lnf_b, g.dtmp, a.layers[c_.L - 1].x_out, P + lay_.lnf_w,
                           a.lnf_mean, a.lnf_rstd, N, d, false, st_);
  for (int64_t l = c_.L - 1; l >= 0; --l) backward_layer(l, a.layers[l], g, N);
  backward_embeddings(b, g);
  cuda::stream_synchronize(st_);
}

// One block, last op first; the CPU's sequence of calls with the same operands.
void CudaModel::backward_layer(int64_t l, const GpuActs::Layer& A, const GpuGrads& g, int64_t N) {
  const LayerOffsets& o = lay_.layers[l];
  const int64_t d = c_.d;
  const float* P = P_.get();
  const Bf16* Pb = Pb_.get();
  float* G = G_.get();
  const cuda::Stream s = st_;
  if (!bf16_) {
    // MLP: x_out = x_mid + c_proj(gelu(c_fc(ln_2(x_mid))))
    cuda::column_sum_add(G + o.mlp_proj_b, g.dres, N, d, s);
    cuda::sgemm(true, false, d, 4 * d, N, 1.0f, g.dres, d, A.fch_gelu, 4 * d, 1.0f, G + o.mlp_proj_w, 4 * d, s);
    cuda::sgemm(false, false, N, 4 * d, d, 1.0f, g.dres, d, P + o.mlp_proj_w, 4 * d, 0.0f, g.dgelu, 4 * d, s);
    cuda::gelu_backward(g.dfc, A.fch, g.dgelu, N * 4 * d, false, s);
    cuda::column_sum_add(G + o.fc_b, g.dfc, N, 4 * d, s);
    cuda::sgemm(true, false, 4 * d, d, N, 1.0f, g.dfc, 4 * d, A.ln2, d, 1.0f, G + o.fc_w, d, s);
    cuda::sgemm(false, false, N, d, 4 * d, 1.0f, g.dfc, 4 * d, P + o.fc_w, d, 0.0f, g.dtmp, d, s);
  } else {
    cuda::convert_f32_to_bf16(g.dres_b, g.dres, N * d, s);
    cuda::column_sum_add(G + o.mlp_proj_b, g.dres, N, d, s);
    cuda::gemm_bf16(true, false, d, 4 * d, N, 1.0f, g.dres_b, d, A.gelu_b, 4 * d, 1.0f, G + o.mlp_proj_w, 4 * d, s);
    cuda::gemm_bf16_out(false, false, N, 4 * d, d, 1.0f, g.dres_b, d, Pb + o.mlp_proj_w, 4 * d, 0.0f, g.dgelu_b,
                        4 * d, s);
    cuda::gelu_backward_bf16(g.dfc_b, A.fch_b, g.dgelu_b, N * 4 * d, false, s);
    cuda::column_sum_add_bf16(G + o.fc_b, g.dfc_b, N, 4 * d, s);
    cuda::gemm_bf16(true, false, 4 * d, d, N, 1.0f, g.dfc_b, 4 * d, A.ln2_b, d, 1.0f, G + o.fc_w, d, s);
    cuda::gemm_bf16(false, false, N, d, 4 * d, 1.0f, g.dfc_b, 4 * d, Pb + o.fc_w, d, 0.0f, g.dtmp, d, s);
  }
  cuda::layernorm_backward(g.dres, G + o.ln2_w, G + o.ln2_b, g.dtmp, A.x_mid, P + o.ln2_w, A.ln2_mean, A.ln2_rstd, N,
                           d, true, s);
  // Attention: x_mid = x_in + c_proj(attn(c_attn(ln_1(x_in))))
  cuda::column_sum_add(G + o.attn_proj_b, g.dres, N, d, s);
  if (!bf16_) {
    cuda::sgemm(true, false, d, d, N, 1.0f, g.dres, d, A.atty, d, 1.0f, G + o.attn_proj_w, d, s);
    cuda::sgemm(false, false, N, d, d, 1.0f, g.dres, d, P + o.attn_proj_w, d, 0.0f, g.datty, d, s);
  } else {
    cuda::convert_f32_to_bf16(g.dres_b, g.dres, N * d, s);
    cuda::gemm_bf16(true, false, d, d, N, 1.0f, g.dres_b, d, A.atty_b, d, 1.0f, G + o.attn_proj_w, d, s);
    cuda::gemm_bf16(false, false, N, d, d, 1.0f, g.dres_b, d, Pb + o.attn_proj_w, d, 0.0f, g.datty, d, s);
  }
  attention_backward(train_.pk, A, g);
  cuda::column_sum_add(G + o.qkv_b, g.dqkv, N, 3 * d, s);
  if (!bf16_) {
    cuda::sgemm(true, false, 3 * d, d, N, 1.0f, g.dqkv, 3 * d, A.ln1, d, 1.0f, G + o.qkv_w, d, s);
    cuda::sgemm(false, false, N, d, 3 * d, 1.0f, g.dqkv, 3 * d, P + o.qkv_w, d, 0.0f, g.dtmp, d, s);
  } else {
    cuda::convert_f32_to_bf16(g.dqkv_b, g.dqkv, N * 3 * d, s);
    cuda::gemm_bf16(true, false, 3 * d, d, N, 1.0f, g.dqkv_b, 3 * d, A.ln1_b, d, 1.0f, G + o.qkv_w, d, s);
    cuda::gemm_bf16(false, false, N, d, 3 * d, 1.0f, g.dqkv_b, 3 * d, Pb + o.qkv_w, d, 0.0f, g.dtmp, d, s);
  }
  cuda::layernorm_backward(g.dres, G + o.ln1_w, G + o.ln1_b, g.dtmp, A.x_in, P + o.ln1_w, A.ln1_mean, A.ln1_rstd, N,
                           d, true, s);
}

// dqkv of every row from datty, per run of equal-length sequences (the forward's batching).
void CudaModel::attention_backward(const Packed& pk, const GpuActs::Layer& A, const GpuGrads& g) {
  const int64_t d = c_.d, H = c_.H, hd = c_.hd(), ns = static_cast<int64_t>(pk.row0.size());
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  for (int64_t s = 0; s < ns;) {
    const int64_t n = pk.nrows[s];
    int64_t e = s + 1;
    while (e < ns && pk.nrows[e] == n && e - s < 65535) ++e;
    if (n > 0) {
      const int64_t r0 = pk.row0[s], sq = n * 3 * d, so = n * d;
      const float* q = A.qkv + r0 * 3 * d;
      float* dq = g.dqkv + r0 * 3 * d;
      const AttnDims dims{e - s, H, n, n, hd};
      cuda::attention_backward(dims, AttnViewOut{dq, sq, 3 * d, hd}, AttnViewOut{dq + d, sq, 3 * d, hd},
                               AttnViewOut{dq + 2 * d, sq, 3 * d, hd}, AttnView{g.datty + r0 * d, so, d, hd},
                               AttnView{A.atty + r0 * d, so, d, hd}, A.lse + H * r0, AttnView{q, sq, 3 * d, hd},
                               AttnView{q + d, sq, 3 * d, hd}, AttnView{q + 2 * d, sq, 3 * d, hd}, nullptr, scale,
                               false, st_);
    }
    s = e;
  }
}

// Embeddings: text rows -> wte[id], patch rows -> patch_pos[j], every row -> wpe[pos]; each table row
// adds its source rows in row order (the CPU's serial order, so these sums are bit-identical to it
// given the same dres); then patch_embed.bias and .weight from the patch rows.
void CudaModel::backward_embeddings(const Batch& b, const GpuGrads& g) {
  const Packed& pk = b.pk;
  const int64_t N = pk.N, d = c_.d;
  std::vector<std::pair<int64_t, int64_t>> pairs;  // (destination offset, source row)
  pairs.reserve(2 * N);
  for (int64_t r = 0; r < N; ++r) {
    const bool text = pk.row_token[r] >= 0;
    pairs.emplace_back(text ? lay_.wte + int64_t(pk.row_token[r]) * d : lay_.patch_pos + int64_t(pk.row_patch[r]) * d,
                       r);
    pairs.emplace_back(lay_.wpe + int64_t(pk.row_pos[r]) * d, r);
  }
  std::sort(pairs.begin(), pairs.end());  // by destination, then row
  std::vector<int64_t> idx;               // [dst (nseg) | start (nseg + 1) | src rows (2N)]
  std::vector<int64_t> dst, start;
  for (size_t k = 0; k < pairs.size(); ++k)
    if (k == 0 || pairs[k].first != pairs[k - 1].first) dst.push_back(pairs[k].first), start.push_back(int64_t(k));
  start.push_back(static_cast<int64_t>(pairs.size()));
  const int64_t nseg = static_cast<int64_t>(dst.size());
  idx.reserve(2 * nseg + 1 + pairs.size());
  idx.insert(idx.end(), dst.begin(), dst.end());
  idx.insert(idx.end(), start.begin(), start.end());
  for (const auto& p : pairs) idx.push_back(p.second);
  int64_t* dev = seg_.get(std::max<size_t>(idx.size(), 1));
  cuda::copy_to_device(dev, idx.data(), idx.size() * sizeof(int64_t), st_);
  float* G = G_.get();
  cuda::segment_rows_add(G, dev, dev + nseg, dev + 2 * nseg + 1, g.dres, d, nseg, st_);
  const int64_t n_patch = static_cast<int64_t>(pk.patch_rows.size());
  if (n_patch > 0) {
    cuda::gather_rows(g.dimg, g.dres, b.patch_rows.buf.get(), n_patch, d, st_);
    cuda::column_sum_add(G + lay_.patch_b, g.dimg, n_patch, d, st_);
    cuda::sgemm(true, false, d, c_.cpp(), n_patch, 1.0f, g.dimg, d, b.patches.buf.get(), c_.cpp(), 1.0f,
                G + lay_.patch_w, c_.cpp(), st_);
  }
}

double CudaModel::cross_entropy(const std::vector<SeqInput>& seqs, bool mean, double scale, int64_t* count) {
  int64_t total = 0;
  for (const SeqInput& q : seqs) total += q.n_tokens;
  std::vector<float> logp(total, 0.0f);
  const int64_t scored = forward(seqs, 1.0f, false, true, logp.data(), nullptr);
  const Packed& pk = train_.pk;
  double loss = 0;
  for (int64_t r = 0; r < pk.N; ++r)  // row order: the CPU's
    if (pk.target_token[r] >= 0) loss -= logp[pk.target_token[r]];
  const double w = mean ? (scored > 0 ? 1.0 / static_cast<double>(scored) : 0.0) : 1.0;
  std::vector<float> dlogp(total, 0.0f);
  for (int64_t r = 0; r < pk.N; ++r)
    if (pk.target_token[r] >= 0) dlogp[pk.target_token[r]] = static_cast<float>(-w * scale);
  backward(dlogp.data(), nullptr);
  *count = scored;
  return loss * w;
}

}  // namespace medgym::model::gpu
