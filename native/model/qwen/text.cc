#include "model/qwen/text.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/attention.h"
#include "cpu/attention_decode.h"
#include "cpu/fused_linear_logprob.h"
#include "model/linear_paths.h"
#include "cpu/threadpool.h"
#include "model/qwen/ops.h"

namespace medgym::qwen {

namespace {

// New rows per sequence up to which attention runs the decode kernel (row by row over the cache)
// instead of the flash kernel's 32-query tiles.
constexpr int64_t kDecodeMaxRows = 4;

// Rows of the sequences, packed in order, and the runs of consecutive sequences whose linear layers
// take the same GEMM path: decode rows (a cached sequence's few new rows) the dot path, others the
// packed path. The path is a sequence's own, so its numbers never depend on the rest of the batch.
struct Pack {
  int64_t N = 0;
  std::vector<int64_t> row0;
  struct Run {
    int64_t r0, rows;
    bool packed;
  };
  std::vector<Run> runs;
};

bool decode_rows(const SeqRows& s) { return s.cache && s.n <= kDecodeMaxRows; }

Pack pack(const std::vector<SeqRows>& seqs) {
  Pack p;
  for (const SeqRows& s : seqs) {
    const bool packed = !decode_rows(s);
    if (p.runs.empty() || p.runs.back().packed != packed) p.runs.push_back({p.N, 0, packed});
    p.runs.back().rows += s.n;
    p.row0.push_back(p.N);
    p.N += s.n;
  }
  return p;
}

void linear_runs(const Pack& p, const Lin& l, const float* X, float* Y) {
  for (const Pack::Run& r : p.runs) linear(r.rows, l, X + r.r0 * l.in, Y + r.r0 * l.out, r.packed);
}

// Token embeddings, image rows in place of the image tokens.
void embed(const Config& c, const Weights& w, const std::vector<SeqRows>& seqs, const Pack& p, float* x) {
  const int64_t D = c.text.D;
  parallel_for(static_cast<int64_t>(seqs.size()), [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      const SeqRows& q = seqs[static_cast<size_t>(s)];
      int64_t img = 0;
      for (int64_t i = 0; i < q.n; ++i) {
        float* row = x + (p.row0[static_cast<size_t>(s)] + i) * D;
        const int32_t t = q.tokens[i];
        if (t == c.image_token && q.image_rows) std::memcpy(row, q.image_embeds + (img++) * D, sizeof(float) * static_cast<size_t>(D));
        else w.embed_row(t, row);
      }
    }
  });
}

// cos / sin [N, hd/2] of the rows' M-RoPE angles.
void mrope(const TextConfig& t, const std::vector<SeqRows>& seqs, const Pack& p, float* cs, float* sn) {
  const int64_t half = t.hd / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  std::vector<int> axis(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    inv[static_cast<size_t>(i)] =
        1.0f / std::pow(static_cast<float>(t.theta), static_cast<float>(2 * i) / static_cast<float>(t.hd));
    axis[static_cast<size_t>(i)] = i < t.mrope[0] ? 0 : i < t.mrope[0] + t.mrope[1] ? 1 : 2;
  }
  for (size_t s = 0; s < seqs.size(); ++s) {
    const SeqRows& q = seqs[s];
    parallel_for(q.n, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t r = p.row0[s] + i;
        for (int64_t f = 0; f < half; ++f) {
          const float a = static_cast<float>(q.pos[axis[static_cast<size_t>(f)] * q.n + i]) * inv[static_cast<size_t>(f)];
          cs[r * half + f] = std::cos(a);
          sn[r * half + f] = std::sin(a);
        }
      }
    }, 64);
  }
}

// Per-thread buffers of attention.
struct Scratch {
  std::vector<float> scores, kv;
  std::vector<int64_t> n_keys;
  std::vector<const KVExtent*> extents;
};

// Attention of sequence s's new rows (q [n, D] at its rows, heads stored [rep][KVH]) over its keys:
// the cache's when it has one (past rows, then the new rows, already written), else the new rows'.
//  - Decode rows: the paged decode kernel. Stored head r*KVH + g reads KV head g, and a row's D
//    query values are rep groups of KVH heads, so (row, r) is one query of KVH heads at stride
//    KVH*hd: the kernel runs as on a KVH-head model (forks read their shared blocks in place).
//  - Other rows: the flash kernel, B = rep query-head groups over the same keys (key view stride 0
//    across the groups); a prefix in the cache is gathered into contiguous rows first.
void attend(const TextConfig& t, const SeqRows& q, int64_t row0, int64_t layer, const std::vector<KVExtent>& ext,
            const float* Q, const float* K, const float* V, float* out, Scratch& sc) {
  const int64_t D = t.D, kvd = t.kv_dim(), hd = t.hd, rep = t.rep(), KVH = t.KVH;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const model::Config kc = kv_shape(t);
  const int64_t past = q.cache ? q.cache->len : 0, Tk = past + q.n;
  const float* qp = Q + row0 * D;
  float* op = out + row0 * D;
  if (q.cache && q.n <= kDecodeMaxRows) {  // serial: the caller runs sequences in parallel
    const int64_t nq = q.n * rep;
    sc.n_keys.resize(static_cast<size_t>(nq));
    sc.extents.assign(static_cast<size_t>(nq), ext.data());
    for (int64_t i = 0; i < nq; ++i) sc.n_keys[static_cast<size_t>(i)] = past + i / rep + 1;
    sc.scores.resize(static_cast<size_t>(Tk));
    const PagedKV kv{sc.extents.data(), model::KVCache::k_slot(kc, layer), model::KVCache::v_slot(kc, layer)};
    attention_decode_paged(nq, KVH, hd, qp, KVH * hd, sc.n_keys.data(), kv, scale, op, KVH * hd, nullptr, sc.scores.data());
    return;
  }
  AttnView kv_k{K + row0 * kvd, 0, kvd, hd}, kv_v{V + row0 * kvd, 0, kvd, hd};
  if (past > 0) {  // K then V, head-major [KVH, Tk, hd], from the blocks (a head's rows of an extent are contiguous)
    sc.kv.resize(static_cast<size_t>(2 * KVH * Tk * hd));
    float* buf = sc.kv.data();
    const int64_t ks = model::KVCache::k_slot(kc, layer), vs = model::KVCache::v_slot(kc, layer);
    int64_t j = 0;
    for (const KVExtent& e : ext) {
      const int64_t rows = std::min(e.rows, Tk - j);
      if (rows <= 0) break;
      for (int64_t h = 0; h < KVH; ++h) {
        std::memcpy(buf + (h * Tk + j) * hd, e.block + (ks + h) * e.cap * hd, sizeof(float) * static_cast<size_t>(rows * hd));
        std::memcpy(buf + ((KVH + h) * Tk + j) * hd, e.block + (vs + h) * e.cap * hd, sizeof(float) * static_cast<size_t>(rows * hd));
      }
      j += rows;
    }
    kv_k = AttnView{buf, 0, hd, Tk * hd};
    kv_v = AttnView{buf + KVH * Tk * hd, 0, hd, Tk * hd};
  }
  attention_forward(AttnDims{rep, KVH, q.n, Tk, hd}, AttnViewOut{op, KVH * hd, D, hd}, nullptr,
                    AttnView{qp, KVH * hd, D, hd}, kv_k, kv_v, nullptr, scale);
}

// The decoder over packed rows: x [N, D] in, final-norm hidden states out (in x).
void trunk(const Config& c, const Weights& w, const std::vector<SeqRows>& seqs, const Pack& p, float* x) {
  const TextConfig& t = c.text;
  const int64_t N = p.N, D = t.D, kvd = t.kv_dim(), half = t.hd / 2;
  const float eps = static_cast<float>(t.eps);
  std::vector<float> cs(static_cast<size_t>(N * half)), sn(static_cast<size_t>(N * half));
  mrope(t, seqs, p, cs.data(), sn.data());
  std::vector<float> h(static_cast<size_t>(N * D)), q(static_cast<size_t>(N * D)), att(static_cast<size_t>(N * D));
  std::vector<float> k(static_cast<size_t>(N * kvd)), v(static_cast<size_t>(N * kvd));
  std::vector<float> gu(static_cast<size_t>(N * 2 * t.I));
  bool all_decode = true;
  for (const SeqRows& s : seqs) all_decode = all_decode && decode_rows(s);
  const model::Config kc = kv_shape(t);
  std::vector<std::vector<KVExtent>> ext(seqs.size());
  for (size_t s = 0; s < seqs.size(); ++s) {
    if (!seqs[s].cache) continue;
    seqs[s].cache->cache.reserve(kc, seqs[s].cache->len + seqs[s].n);
    seqs[s].cache->cache.extents(ext[s]);
  }

  for (int64_t l = 0; l < t.L; ++l) {
    const TextLayer& L = w.layers[static_cast<size_t>(l)];
    rmsnorm(N, D, x, L.in_norm, eps, h.data());
    linear_runs(p, L.q, h.data(), q.data());
    linear_runs(p, L.k, h.data(), k.data());
    linear_runs(p, L.v, h.data(), v.data());
    rotate(N, t.H, t.hd, q.data(), D, cs.data(), sn.data());
    rotate(N, t.KVH, t.hd, k.data(), kvd, cs.data(), sn.data());
    for (size_t s = 0; s < seqs.size(); ++s) {  // append the new keys / values
      const KVRows* kr = seqs[s].cache;
      if (!kr) continue;
      for (int64_t i = 0; i < seqs[s].n; ++i)
        for (int64_t g = 0; g < t.KVH; ++g) {
          const int64_t src = (p.row0[s] + i) * kvd + g * t.hd, pos = kr->len + i;
          std::memcpy(kr->cache.at(kc, 0, l, g, pos), k.data() + src, sizeof(float) * static_cast<size_t>(t.hd));
          std::memcpy(kr->cache.at(kc, 1, l, g, pos), v.data() + src, sizeof(float) * static_cast<size_t>(t.hd));
        }
    }
    auto attend_all = [&](int64_t s0, int64_t s1, Scratch& sc) {
      for (int64_t s = s0; s < s1; ++s)
        attend(t, seqs[static_cast<size_t>(s)], p.row0[static_cast<size_t>(s)], l, ext[static_cast<size_t>(s)], q.data(),
               k.data(), v.data(), att.data(), sc);
    };
    if (all_decode) {
      parallel_for(static_cast<int64_t>(seqs.size()), [&](int64_t s0, int64_t s1) {
        Scratch sc;
        attend_all(s0, s1, sc);
      });
    } else {
      Scratch sc;
      attend_all(0, static_cast<int64_t>(seqs.size()), sc);
    }
    linear_runs(p, L.o, att.data(), h.data());
    add_inplace(N * D, x, h.data());
    rmsnorm(N, D, x, L.post_norm, eps, h.data());
    float* g = gu.data();
    float* u = gu.data() + N * t.I;
    linear_runs(p, L.gate, h.data(), g);
    linear_runs(p, L.up, h.data(), u);
    silu_mul(N, t.I, g, t.I, u, t.I);
    linear_runs(p, L.down, g, h.data());
    add_inplace(N * D, x, h.data());
  }
  for (const SeqRows& s : seqs)
    if (s.cache) s.cache->len += s.n;
  rmsnorm(N, D, x, w.norm, eps, x);
}

}  // namespace

model::Config kv_shape(const TextConfig& t) {
  model::Config c;
  c.L = t.L;
  c.H = t.KVH;
  c.d = t.kv_dim();
  c.T = int64_t(1) << 30;  // no position limit of its own: blocks grow to kKVMaxBlock rows
  return c;
}

std::shared_ptr<model::KVPool> new_kv_pool(const TextConfig& t) { return std::make_shared<model::KVPool>(kv_shape(t)); }

KVRows fork_rows(const TextConfig& t, const KVRows& parent) {
  KVRows child(nullptr);
  child.cache = parent.cache.fork(kv_shape(t), parent.len);
  child.len = parent.len;
  return child;
}

void text_score(const Config& c, const Weights& w, const std::vector<SeqRows>& seqs, float temperature, float* logp,
                float* entropy) {
  const Pack p = pack(seqs);
  if (p.N == 0) return;
  const int64_t D = c.text.D;
  std::vector<float> x(static_cast<size_t>(p.N * D));
  embed(c, w, seqs, p, x.data());
  trunk(c, w, seqs, p, x.data());
  std::vector<int32_t> targets(static_cast<size_t>(p.N));
  for (size_t s = 0; s < seqs.size(); ++s)
    std::memcpy(targets.data() + p.row0[s], seqs[s].targets, sizeof(int32_t) * static_cast<size_t>(seqs[s].n));
  if (w.head.w16) fused_linear_logprob_forward_bf16w(x.data(), w.head.w16, targets.data(), p.N, D, c.text.V, temperature, logp, entropy, nullptr);
  else fused_linear_logprob_forward(x.data(), w.head.w, targets.data(), p.N, D, c.text.V, temperature, logp, entropy, nullptr);
}

void text_extend(const Config& c, const Weights& w, const std::vector<SeqRows>& seqs, float* logits) {
  const Pack p = pack(seqs);
  if (p.N == 0) return;
  const int64_t D = c.text.D;
  std::vector<float> x(static_cast<size_t>(p.N * D));
  embed(c, w, seqs, p, x.data());
  trunk(c, w, seqs, p, x.data());
  std::vector<float> last(static_cast<size_t>(seqs.size() * D));
  for (size_t s = 0; s < seqs.size(); ++s)
    std::memcpy(last.data() + s * D, x.data() + (p.row0[s] + seqs[s].n - 1) * D, sizeof(float) * static_cast<size_t>(D));
  // The dot path: each row's logits are the same whatever the number of sequences.
  linear(static_cast<int64_t>(seqs.size()), w.head, last.data(), logits, false);
}

}  // namespace medgym::qwen
