// CudaModel forward: the CPU's forward.cc on the device. Rows are packed on the host (Model::pack,
// so ids, images, masks and positions mean exactly what they mean on the CPU); their bookkeeping is
// uploaded, then embeddings, the L pre-LN blocks and either the fused log-prob head (forward) or the
// logits of each sequence's last row (extend, for generation; sampling stays on the host).
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "cuda/rowops.h"
#include "model/gpu/gpu_model.h"
#include "model/prefix.h"

namespace medgym::model::gpu {

namespace {

template <typename T>
T* upload(Arena<T>& a, const std::vector<T>& h, cuda::Stream s) {
  T* p = a.get(std::max<size_t>(h.size(), 1));
  cuda::copy_to_device(p, h.data(), h.size() * sizeof(T), s);  // pageable source: staged before returning
  return p;
}

// Per row the float offsets into P of the terms the CPU adds, in its order: text rows wte[id] +
// wpe[pos]; patch rows patch_pos[j] + wpe[pos] + patch_embed.bias (the patch GEMM is added after).
std::vector<int64_t> embedding_offsets(const Packed& pk, const Layout& lay, int64_t d) {
  std::vector<int64_t> offs(static_cast<size_t>(pk.N) * 3);
  for (int64_t r = 0; r < pk.N; ++r) {
    const bool text = pk.row_token[r] >= 0;
    offs[3 * r] = text ? lay.wte + int64_t(pk.row_token[r]) * d : lay.patch_pos + int64_t(pk.row_patch[r]) * d;
    offs[3 * r + 1] = lay.wpe + int64_t(pk.row_pos[r]) * d;
    offs[3 * r + 2] = text ? -1 : lay.patch_b;
  }
  return offs;
}

}  // namespace

void CudaModel::linear(const float* x, const Bf16* xb, int64_t M, int64_t n, int64_t k, int64_t w, float* y) {
  if (bf16_) cuda::gemm_bf16(false, true, M, n, k, 1.0f, xb, k, Pb_.get() + w, k, 1.0f, y, n, st_);
  else cuda::sgemm(false, true, M, n, k, 1.0f, x, k, P_.get() + w, k, 1.0f, y, n, st_);
}

void CudaModel::trunk(const std::vector<SeqInput>& seqs, Batch& b, bool keep, const Decode& dec) {
  const Packed& pk = b.pk;
  const int64_t N = pk.N, d = c_.d, cpp = c_.cpp();
  const int64_t n_patch = static_cast<int64_t>(pk.patch_rows.size());
  size_t nf = 0, nh = 0;
  b.acts.plan(c_, N, n_patch, keep, bf16_, nullptr, nullptr, &nf, &nh);
  float* fbase = b.f32.get(nf);
  Bf16* hbase = bf16_ ? b.b16.get(nh) : nullptr;
  b.acts.plan(c_, N, n_patch, keep, bf16_, fbase, hbase, &nf, &nh);
  GpuActs& a = b.acts;
  const float* P = P_.get();

  const int64_t* offs = upload(b.offs, embedding_offsets(pk, lay_, d), st_);
  cuda::gather_rows_sum(a.x0, P, offs, 3, N, d, st_);
  if (n_patch > 0) {  // x[patch row k] += patch_embed.weight @ patch k
    const float* patches = upload(b.patches, pk.patches, st_);
    const int64_t* prows = upload(b.patch_rows, pk.patch_rows, st_);
    cuda::sgemm(false, true, n_patch, d, cpp, 1.0f, patches, cpp, P + lay_.patch_w, cpp, 0.0f, a.patch_tmp, d, st_);
    cuda::add_rows_indexed(a.x0, prows, a.patch_tmp, n_patch, d, st_);
  }

  for (int64_t l = 0; l < c_.L; ++l) {
    const LayerOffsets& o = lay_.layers[l];
    GpuActs::Layer& A = a.layers[l];
    // x_mid = x_in + c_proj(attn(c_attn(ln_1(x_in))))
    cuda::layernorm_forward(A.ln1, A.ln1_mean, A.ln1_rstd, A.x_in, P + o.ln1_w, P + o.ln1_b, N, d, kLnEps, st_);
    if (bf16_) cuda::convert_f32_to_bf16(A.ln1_b, A.ln1, N * d, st_);
    cuda::rows_bias(A.qkv, nullptr, P + o.qkv_b, N, 3 * d, st_);
    linear(A.ln1, A.ln1_b, N, 3 * d, d, o.qkv_w, A.qkv);
    attention(seqs, b, l, dec);
    if (bf16_) cuda::convert_f32_to_bf16(A.atty_b, A.atty, N * d, st_);
    cuda::rows_bias(A.x_mid, A.x_in, P + o.attn_proj_b, N, d, st_);
    linear(A.atty, A.atty_b, N, d, d, o.attn_proj_w, A.x_mid);
    // x_out = x_mid + c_proj(gelu(c_fc(ln_2(x_mid))))
    cuda::layernorm_forward(A.ln2, A.ln2_mean, A.ln2_rstd, A.x_mid, P + o.ln2_w, P + o.ln2_b, N, d, kLnEps, st_);
    if (bf16_) cuda::convert_f32_to_bf16(A.ln2_b, A.ln2, N * d, st_);
    cuda::rows_bias(A.fch, nullptr, P + o.fc_b, N, 4 * d, st_);
    linear(A.ln2, A.ln2_b, N, 4 * d, d, o.fc_w, A.fch);
    if (bf16_) {
      cuda::convert_f32_to_bf16(A.fch_b, A.fch, N * 4 * d, st_);
      cuda::gelu_forward_bf16(A.gelu_b, A.fch_b, N * 4 * d, st_);
    } else {
      cuda::gelu_forward(A.fch_gelu, A.fch, N * 4 * d, st_);
    }
    cuda::rows_bias(A.x_out, A.x_mid, P + o.mlp_proj_b, N, d, st_);
    linear(A.fch_gelu, A.gelu_b, N, d, 4 * d, o.mlp_proj_w, A.x_out);
  }
}

// Causal attention of layer `layer` over the packed rows. Training / scoring: runs of consecutive
// sequences of equal length go in one batched call (their rows are evenly strided). Generation: the
// new K/V rows are written into the pool first; then one batched decode call when every sequence
// brings the same few rows (a decode step), else one call per sequence over its cache.
void CudaModel::attention(const std::vector<SeqInput>& seqs, const Batch& b, int64_t layer, const Decode& dec) {
  const Packed& pk = b.pk;
  const GpuActs::Layer& A = b.acts.layers[layer];
  const int64_t d = c_.d, H = c_.H, hd = c_.hd(), ns = static_cast<int64_t>(pk.row0.size());
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  if (!dec.on) {
    for (int64_t s = 0; s < ns;) {
      const int64_t n = pk.nrows[s];
      int64_t e = s + 1;
      while (e < ns && pk.nrows[e] == n && e - s < 65535) ++e;
      if (n > 0) {
        const int64_t r0 = pk.row0[s];
        const float* q = A.qkv + r0 * 3 * d;
        const AttnDims dims{e - s, H, n, n, hd};
        cuda::attention_forward(dims, AttnViewOut{A.atty + r0 * d, n * d, d, hd}, A.lse + H * r0,
                                AttnView{q, n * 3 * d, 3 * d, hd}, AttnView{q + d, n * 3 * d, 3 * d, hd},
                                AttnView{q + 2 * d, n * 3 * d, 3 * d, hd}, nullptr, scale, st_);
      }
      s = e;
    }
    return;
  }
  float* K = kv_->k(layer);
  float* V = kv_->v(layer);
  const int64_t ss = kv_->slot_stride(), hs = kv_->head_stride();
  cuda::kv_cache_write(K, V, ss, hs, A.qkv, 3 * d, d, 2 * d, dec.row_slot, dec.row_pos, pk.N, H, hd, st_);
  const int64_t n0 = pk.nrows[0];
  bool uniform = n0 > 0 && n0 <= kDecodeMaxQueries;
  for (int64_t s = 1; s < ns && uniform; ++s) uniform = pk.nrows[s] == n0;
  if (uniform) {  // rows of sequence s start at s * n0
    const AttnDims dims{ns, H, n0, dec.max_len, hd};
    cuda::attention_decode(dims, AttnViewOut{A.atty, n0 * d, d, hd}, A.lse, AttnView{A.qkv, n0 * 3 * d, 3 * d, hd},
                           AttnView{K, ss, hd, hs}, AttnView{V, ss, hd, hs}, dec.kv_len, dec.kv_slot, scale, st_);
    return;
  }
  for (int64_t s = 0; s < ns; ++s) {
    const int64_t n = pk.nrows[s], r0 = pk.row0[s], past = seqs[s].past;
    if (n == 0) continue;
    const AttnDims dims{1, H, n, past + n, hd};
    const int64_t at = int64_t(dec.slot[s]) * ss;
    const AttnView kv{K + at, 0, hd, hs}, vv{V + at, 0, hd, hs}, qv{A.qkv + r0 * 3 * d, 0, 3 * d, hd};
    const AttnViewOut ov{A.atty + r0 * d, 0, d, hd};
    if (n <= kDecodeMaxQueries) cuda::attention_decode(dims, ov, A.lse + H * r0, qv, kv, vv, nullptr, scale, st_);
    else cuda::attention_forward(dims, ov, A.lse + H * r0, qv, kv, vv, nullptr, scale, st_);
  }
}

int64_t CudaModel::forward(const std::vector<SeqInput>& seqs, float temperature, bool want_entropy, bool keep,
                           float* logp, float* entropy) {
  activate();
  saved_ = false;  // an unconsumed forward's activations are overwritten (as on the CPU)
  Batch& b = train_;
  m_.pack(seqs, b.pk, true);
  const Packed& pk = b.pk;
  const int64_t N = pk.N, d = c_.d;
  trunk(seqs, b, keep, Decode{});
  GpuActs& a = b.acts;
  const float* P = P_.get();
  cuda::layernorm_forward(a.lnf, a.lnf_mean, a.lnf_rstd, a.layers[c_.L - 1].x_out, P + lay_.lnf_w, P + lay_.lnf_b, N,
                          d, kLnEps, st_);
  const int32_t* targets = upload(b.targets, pk.targets, st_);
  float* ent = keep || want_entropy ? a.head_entropy : nullptr;
  if (bf16_) {
    cuda::convert_f32_to_bf16(a.lnf_b, a.lnf, N * d, st_);
    cuda::fused_linear_logprob_forward_bf16(a.lnf_b, Pb_.get() + lay_.wte, targets, N, d, c_.V, temperature,
                                            a.head_logp, ent, a.head_lse, st_);
  } else {
    cuda::fused_linear_logprob_forward(a.lnf, P + lay_.wte, targets, N, d, c_.V, temperature, a.head_logp, ent,
                                       a.head_lse, st_);
  }
  std::vector<float> row_logp(N), row_ent(want_entropy ? N : 0);
  cuda::copy_to_host(row_logp.data(), a.head_logp, N * sizeof(float), st_);
  if (want_entropy) cuda::copy_to_host(row_ent.data(), a.head_entropy, N * sizeof(float), st_);
  scatter_row_outputs(pk, row_logp.data(), want_entropy ? row_ent.data() : nullptr, logp, entropy);
  if (keep) saved_ = true, temperature_ = temperature;
  return pk.scored;
}

void CudaModel::extend(const std::vector<SeqInput>& seqs, float* logits) {
  activate();
  Batch& b = gen_;
  m_.pack(seqs, b.pk, false);
  const Packed& pk = b.pk;
  const int64_t N = pk.N, M = static_cast<int64_t>(seqs.size()), d = c_.d, V = c_.V;
  Decode dec;
  dec.on = true;
  dec.slot.resize(M);
  std::vector<int32_t> kv_len(M), row_slot(N);
  std::vector<int64_t> last(M);
  for (int64_t s = 0; s < M; ++s) {
    KVCache* cache = seqs[s].cache;
    if (!cache) throw std::invalid_argument("extend: every sequence needs a KV cache");
    if (pk.nrows[s] < 1) throw std::invalid_argument("extend: a sequence brings no new tokens");
    auto* slot = dynamic_cast<KvSlot*>(cache->accel.get());
    if (!slot) {
      auto fresh = std::make_shared<KvSlot>(kv_, kv_->acquire());
      slot = fresh.get();
      cache->accel = std::move(fresh);
    }
    dec.slot[s] = slot->slot;
    const int64_t len = seqs[s].past + pk.nrows[s];
    kv_len[s] = static_cast<int32_t>(len);
    dec.max_len = std::max(dec.max_len, len);
    last[s] = pk.row0[s] + pk.nrows[s] - 1;
    for (int64_t r = pk.row0[s]; r < pk.row0[s] + pk.nrows[s]; ++r) row_slot[r] = slot->slot;
  }
  kv_->ensure(dec.max_len, st_);
  dec.row_slot = upload(b.row_slot, row_slot, st_);
  dec.row_pos = upload(b.row_pos, pk.row_pos, st_);
  dec.kv_len = upload(b.kv_len, kv_len, st_);
  dec.kv_slot = upload(b.kv_slot, dec.slot, st_);
  trunk(seqs, b, false, dec);

  // ln_f of each sequence's last row, then logits = h wte^T.
  const float* P = P_.get();
  float* t = b.tail.get(static_cast<size_t>(2 * M * d + 2 * M + M * V));
  float *xl = t, *h = xl + M * d, *mean = h + M * d, *rstd = mean + M, *lg = rstd + M;
  cuda::gather_rows(xl, b.acts.layers[c_.L - 1].x_out, upload(b.rows, last, st_), M, d, st_);
  cuda::layernorm_forward(h, mean, rstd, xl, P + lay_.lnf_w, P + lay_.lnf_b, M, d, kLnEps, st_);
  if (bf16_) {
    Bf16* hb = b.tail_b.get(static_cast<size_t>(M * d));
    cuda::convert_f32_to_bf16(hb, h, M * d, st_);
    cuda::gemm_bf16(false, true, M, V, d, 1.0f, hb, d, Pb_.get() + lay_.wte, d, 0.0f, lg, V, st_);
  } else {
    cuda::sgemm(false, true, M, V, d, 1.0f, h, d, P + lay_.wte, d, 0.0f, lg, V, st_);
  }
  cuda::copy_to_host(logits, lg, static_cast<size_t>(M * V) * sizeof(float), st_);
}

}  // namespace medgym::model::gpu
