// Generation forward (Model::extend): the new rows of each sequence through the model against its
// paged KV cache (kv_cache.h), then the logits of its last row. The training/scoring forward
// (forward.cc) is separate and unchanged.
//
// Batch invariance (SPEC §7). A row's result depends only on its own sequence: LayerNorm and GELU
// work per row, attention per sequence, and the linear layers take a GEMM path chosen by the
// sequence's own row count, not the call's (gemm_internal.h; each path computes every element with
// the same operations whatever the tile, thread split or number of rows): decode-step sequences
// (≤ kDecodeMaxRows new rows) on the small-M dot path, prefills on the packed path. So a sequence
// samples the same tokens with bit-identical logp whatever else shares its batch, however rows are
// split over threads, and whether its prompt's cache is shared (fork) or its own. The dot path runs
// at 75-100 GFLOP/s per core at any M on these shapes (the packed path needs M ≥ 32 to match it, and
// is ~1.3× faster on prefill's thousands of rows).
//
// Threads. A decode step (every sequence ≤ kDecodeMaxRows new rows) of a small model is one
// parallel region: each thread runs its share of the sequences through every layer, the head and the
// caller's callback (sampling), with no synchronisation in between. Otherwise (prefill, one sequence,
// or weights too big to read once per thread) ops run one after the other, each parallel inside
// (GEMM over column blocks, attention over sequences, heads and query blocks).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/attention.h"
#include "cpu/attention_decode.h"
#include "cpu/cpu_features.h"
#include "cpu/gelu.h"
#include "cpu/gemm_internal.h"
#include "cpu/layernorm.h"
#include "cpu/threadpool.h"
#include "model/accelerator.h"
#include "model/linear_paths.h"
#include "model/model.h"

namespace medgym::model {

namespace {

constexpr float kLnEps = 1e-5f;
// New rows per sequence up to which attention uses the paged decode kernel (and the step counts as
// a decode step); more rows are gathered and go through the flash kernel.
constexpr int64_t kDecodeMaxRows = 4;
// A decode step runs one sequence share per thread (one parallel region, no synchronisation) when
// the weights are at most this big: every thread then reads all of them, from cache. Bigger models
// split each op's columns over the threads instead, so that their weights stream from memory once.
constexpr int64_t kRowParallelMaxWeightBytes = 8 << 20;
// A decode row's GEMMs cost about as much as attending this many cached positions (tiny: 27 µs for
// 1.6 MFLOP vs ~0.05 µs per position): used to balance the threads' shares.
constexpr int64_t kRowCostKeys = 400;
// Rows per chunk of the cheap row loops when they run op by op (a prefill's thousands of rows).
constexpr int64_t kRowChunk = 128;

// Per-thread scratch, grown on demand and kept (pool threads live as long as the process).
struct Scratch {
  std::vector<float> attn, kv, patch, head;
  std::vector<int64_t> n_keys, prefills;
  std::vector<const KVExtent*> extents;
  float* get(std::vector<float>& v, int64_t n) {
    if (static_cast<int64_t>(v.size()) < n) v.resize(n);
    return v.data();
  }
};
thread_local Scratch t_scratch;

// What one extend() call shares between the threads that run it.
struct Batch {
  const Model& m;
  const std::vector<SeqInput>& seqs;
  const Packed& pk;
  Acts& a;
  const std::vector<int64_t>& patch0;                   // first patch of each sequence (+ total)
  const std::vector<std::vector<KVExtent>>& extents;  // cache extents of each sequence
  float* logits;
  const std::function<void(int64_t)>& after;
};

bool is_decode(const Packed& pk, int64_t s) { return pk.nrows[s] <= kDecodeMaxRows; }

// Y = X @ W^T + beta * Y over the rows of sequences [s0, s1) (X, Y: [rows, K], [rows, N] from row 0),
// one GEMM per run of sequences of the same kind (in practice the whole range is one kind).
void linear_seqs(const Packed& pk, int64_t s0, int64_t s1, int64_t N, int64_t K, const float* X, const float* W,
                 float beta, float* Y) {
  for (int64_t s = s0; s < s1;) {
    int64_t e = s + 1;
    while (e < s1 && is_decode(pk, e) == is_decode(pk, s)) ++e;
    const int64_t r0 = pk.row0[s], r1 = pk.row0[e - 1] + pk.nrows[e - 1];
    linear(!is_decode(pk, s), r1 - r0, N, K, X + r0 * K, W, beta, Y + r0 * N);
    s = e;
  }
}

// Row loops (serial inside a parallel region, chunked over the pool otherwise).
template <typename F>
void rows_for(int64_t r0, int64_t r1, const F& f) {
  parallel_for(r1 - r0, [&](int64_t b, int64_t e) {
    for (int64_t r = r0 + b; r < r0 + e; ++r) f(r);
  }, kRowChunk);
}

void embed(const Batch& g, int64_t s0, int64_t s1, int64_t r0, int64_t r1) {
  const Config& c = g.m.cfg;
  const Layout& lay = g.m.layout;
  const float* P = g.m.params.data();
  const Packed& pk = g.pk;
  const int64_t d = c.d;
  float* x = g.a.x0;
  rows_for(r0, r1, [&](int64_t r) {
    const float* pe = P + lay.wpe + static_cast<int64_t>(pk.row_pos[r]) * d;
    const bool text = pk.row_token[r] >= 0;
    const float* te = text ? P + lay.wte + static_cast<int64_t>(pk.row_token[r]) * d
                           : P + lay.patch_pos + static_cast<int64_t>(pk.row_patch[r]) * d;
    const float* pb = text ? nullptr : P + lay.patch_b;
    for (int64_t i = 0; i < d; ++i) x[r * d + i] = te[i] + pe[i] + (pb ? pb[i] : 0.0f);
  });
  const int64_t p0 = g.patch0[s0], np = g.patch0[s1] - p0;
  if (np == 0) return;
  float* tmp = t_scratch.get(t_scratch.patch, np * d);
  linear(true, np, d, c.cpp(), pk.patches.data() + p0 * c.cpp(), P + lay.patch_w, 0.0f, tmp);
  for (int64_t k = 0; k < np; ++k) {
    float* row = x + pk.patch_rows[p0 + k] * d;
    for (int64_t i = 0; i < d; ++i) row[i] += tmp[k * d + i];
  }
}

// K and V of the new rows into the caches.
void write_kv(const Batch& g, int64_t layer, const float* qkv, int64_t s0, int64_t s1) {
  const Config& c = g.m.cfg;
  const int64_t d = c.d, hd = c.hd();
  for (int64_t s = s0; s < s1; ++s) {
    const SeqInput& q = g.seqs[s];
    for (int64_t i = 0; i < g.pk.nrows[s]; ++i) {
      const float* src = qkv + (g.pk.row0[s] + i) * 3 * d;
      for (int64_t h = 0; h < c.H; ++h) {
        std::memcpy(q.cache->at(c, 0, layer, h, q.past + i), src + d + h * hd, hd * sizeof(float));
        std::memcpy(q.cache->at(c, 1, layer, h, q.past + i), src + 2 * d + h * hd, hd * sizeof(float));
      }
    }
  }
}

// Decode-step sequences [s0, s1) (each ≤ kDecodeMaxRows rows): one paged-attention call, so forked
// siblings read their shared prompt blocks once.
void attend_decode(const Batch& g, int64_t layer, const float* qkv, float* atty, int64_t s0, int64_t s1) {
  const Config& c = g.m.cfg;
  const Packed& pk = g.pk;
  const int64_t d = c.d, H = c.H, hd = c.hd();
  const int64_t r0 = pk.row0[s0], nq = pk.row0[s1 - 1] + pk.nrows[s1 - 1] - r0;
  Scratch& sc = t_scratch;
  sc.n_keys.resize(nq);
  sc.extents.resize(nq);
  for (int64_t s = s0; s < s1; ++s)
    for (int64_t i = 0; i < pk.nrows[s]; ++i) {
      sc.n_keys[pk.row0[s] + i - r0] = g.seqs[s].past + i + 1;
      sc.extents[pk.row0[s] + i - r0] = g.extents[s].data();
    }
  const PagedKV kv{sc.extents.data(), KVCache::k_slot(c, layer), KVCache::v_slot(c, layer)};
  float* scratch = sc.get(sc.attn, c.T);  // scores of one query (at most T keys)
  attention_decode_paged(nq, H, hd, qkv + r0 * 3 * d, 3 * d, sc.n_keys.data(), kv, 1.0f / std::sqrt(static_cast<float>(hd)),
                         atty + r0 * d, d, nullptr, scratch);
}

// A prefill sequence: flash attention of its new rows over its whole prefix (gathered from the
// blocks when there is one; a fresh prompt reads K and V straight from the qkv rows).
void attend_prefill(const Batch& g, int64_t layer, const float* qkv, float* atty, int64_t s) {
  const Config& c = g.m.cfg;
  const SeqInput& q = g.seqs[s];
  const int64_t d = c.d, H = c.H, hd = c.hd(), n = g.pk.nrows[s], r0 = g.pk.row0[s], Tk = q.past + n;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const AttnDims dims{1, H, n, Tk, hd};
  const AttnView qv{qkv + r0 * 3 * d, 0, 3 * d, hd};
  const AttnViewOut ov{atty + r0 * d, 0, d, hd};
  if (q.past == 0) {
    attention_forward(dims, ov, nullptr, qv, AttnView{qkv + r0 * 3 * d + d, 0, 3 * d, hd},
                      AttnView{qkv + r0 * 3 * d + 2 * d, 0, 3 * d, hd}, nullptr, scale);
    return;
  }
  float* buf = t_scratch.get(t_scratch.kv, 2 * H * Tk * hd);  // K then V, head-major [H, Tk, hd]
  const int64_t ks = KVCache::k_slot(c, layer), vs = KVCache::v_slot(c, layer);
  int64_t j = 0;
  for (const KVExtent& e : g.extents[s]) {  // a head's rows of an extent are contiguous
    const int64_t rows = std::min(e.rows, Tk - j);
    if (rows <= 0) break;
    for (int64_t h = 0; h < H; ++h) {
      std::memcpy(buf + (h * Tk + j) * hd, e.block + (ks + h) * e.cap * hd, rows * hd * sizeof(float));
      std::memcpy(buf + ((H + h) * Tk + j) * hd, e.block + (vs + h) * e.cap * hd, rows * hd * sizeof(float));
    }
    j += rows;
  }
  attention_forward(dims, ov, nullptr, qv, AttnView{buf, 0, hd, Tk * hd}, AttnView{buf + H * Tk * hd, 0, hd, Tk * hd},
                    nullptr, scale);
}

void attend(const Batch& g, int64_t layer, const float* qkv, float* atty, int64_t s0, int64_t s1) {
  const Packed& pk = g.pk;
  std::vector<int64_t>& prefills = t_scratch.prefills;
  prefills.clear();
  for (int64_t s = s0; s < s1;) {
    if (!is_decode(pk, s)) {
      prefills.push_back(s++);
      continue;
    }
    int64_t e = s;
    while (e < s1 && is_decode(pk, e)) ++e;
    // Serial inside a parallel region; split over the pool otherwise (chunks of sequences: the
    // kernel's results do not depend on the split).
    parallel_for(e - s, [&](int64_t b, int64_t f) { attend_decode(g, layer, qkv, atty, s + b, s + f); }, 8);
    s = e;
  }
  // Several prefills: one parallel region over them (each serial); one: parallel inside.
  if (prefills.size() == 1) return attend_prefill(g, layer, qkv, atty, prefills[0]);
  parallel_for(static_cast<int64_t>(prefills.size()), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) attend_prefill(g, layer, qkv, atty, prefills[i]);
  });
}

// Sequences [s0, s1) (their rows are contiguous) through every layer, the head and `after`.
void run(const Batch& g, int64_t s0, int64_t s1) {
  const Config& c = g.m.cfg;
  const Layout& lay = g.m.layout;
  const float* P = g.m.params.data();
  const Packed& pk = g.pk;
  const int64_t d = c.d, r0 = pk.row0[s0], r1 = pk.row0[s1 - 1] + pk.nrows[s1 - 1], M = r1 - r0;
  embed(g, s0, s1, r0, r1);
  for (int64_t l = 0; l < c.L; ++l) {
    const LayerOffsets& o = lay.layers[l];
    const Acts::Layer& A = g.a.layers[l];
    layernorm_forward(A.ln1 + r0 * d, A.ln1_mean + r0, A.ln1_rstd + r0, A.x_in + r0 * d, P + o.ln1_w, P + o.ln1_b, M, d, kLnEps);
    rows_for(r0, r1, [&](int64_t r) { std::memcpy(A.qkv + r * 3 * d, P + o.qkv_b, 3 * d * sizeof(float)); });
    linear_seqs(pk, s0, s1, 3 * d, d, A.ln1, P + o.qkv_w, 1.0f, A.qkv);
    write_kv(g, l, A.qkv, s0, s1);
    attend(g, l, A.qkv, A.atty, s0, s1);
    rows_for(r0, r1, [&](int64_t r) {
      for (int64_t i = 0; i < d; ++i) A.x_mid[r * d + i] = A.x_in[r * d + i] + P[o.attn_proj_b + i];
    });
    linear_seqs(pk, s0, s1, d, d, A.atty, P + o.attn_proj_w, 1.0f, A.x_mid);
    layernorm_forward(A.ln2 + r0 * d, A.ln2_mean + r0, A.ln2_rstd + r0, A.x_mid + r0 * d, P + o.ln2_w, P + o.ln2_b, M, d, kLnEps);
    rows_for(r0, r1, [&](int64_t r) { std::memcpy(A.fch + r * 4 * d, P + o.fc_b, 4 * d * sizeof(float)); });
    linear_seqs(pk, s0, s1, 4 * d, d, A.ln2, P + o.fc_w, 1.0f, A.fch);
    // gelu_forward's vector/scalar split is aligned to its start: per row unless rows are 16-aligned.
    if ((4 * d) % 16 == 0) gelu_forward(A.fch_gelu + r0 * 4 * d, A.fch + r0 * 4 * d, M * 4 * d);
    else for (int64_t r = r0; r < r1; ++r) gelu_forward(A.fch_gelu + r * 4 * d, A.fch + r * 4 * d, 4 * d);
    rows_for(r0, r1, [&](int64_t r) {
      for (int64_t i = 0; i < d; ++i) A.x_out[r * d + i] = A.x_mid[r * d + i] + P[o.mlp_proj_b + i];
    });
    linear_seqs(pk, s0, s1, d, 4 * d, A.fch_gelu, P + o.mlp_proj_w, 1.0f, A.x_out);
  }
  // Head: ln_f and the tied logits of each sequence's last row.
  const int64_t n = s1 - s0;
  const float* xL = g.a.layers[c.L - 1].x_out;
  float* buf = t_scratch.get(t_scratch.head, n * (2 * d + 2));
  float *last = buf, *h = buf + n * d, *mean = buf + 2 * n * d, *rstd = mean + n;
  for (int64_t s = s0; s < s1; ++s) std::memcpy(last + (s - s0) * d, xL + (pk.row0[s] + pk.nrows[s] - 1) * d, d * sizeof(float));
  layernorm_forward(h, mean, rstd, last, P + lay.lnf_w, P + lay.lnf_b, n, d, kLnEps);
  linear(false, n, c.V, d, h, P + lay.wte, 0.0f, g.logits + s0 * c.V);
  if (g.after)
    for (int64_t s = s0; s < s1; ++s) g.after(s);
}

}  // namespace

void Model::extend(const std::vector<SeqInput>& seqs, float* logits, const std::function<void(int64_t)>& after) {
  const int64_t S = static_cast<int64_t>(seqs.size());
  if (S == 0) return;
  if (accel) {
    accel->extend(seqs, logits);
    if (after)
      for (int64_t s = 0; s < S; ++s) after(s);
    return;
  }
  Packed& pk = gen_pk_;
  pack(seqs, pk, false);
  Acts& a = gen_acts_;  // reused across decode steps (no allocation, no page faults per token)
  a.allocate(cfg, pk.N, false);
  std::vector<int64_t>& patch0 = gen_patch0_;
  patch0.assign(S + 1, 0);
  std::vector<std::vector<KVExtent>>& extents = gen_extents_;
  if (static_cast<int64_t>(extents.size()) < S) extents.resize(S);
  bool decode = true;
  for (int64_t s = 0; s < S; ++s) {
    const SeqInput& q = seqs[s];
    q.cache->reserve(cfg, q.past + pk.nrows[s]);
    q.cache->extents(extents[s]);
    int64_t imgs = 0;
    for (int64_t i = 0; i < q.n_tokens; ++i) imgs += q.tokens[i] == cfg.image_id;
    patch0[s + 1] = patch0[s] + imgs * cfg.Np();
    decode = decode && is_decode(pk, s);
  }
  const Batch g{*this, seqs, pk, a, patch0, extents, logits, after};
  const int64_t weight_bytes = static_cast<int64_t>(sizeof(float)) * 12 * cfg.d * cfg.d * cfg.L;
  if (decode && S >= 2 && num_threads() > 1 && weight_bytes <= kRowParallelMaxWeightBytes) {
    // Contiguous shares (forked siblings stay together) of about equal cost: a row costs its GEMMs,
    // about as much as attending kRowCostKeys cached positions, plus its attention.
    std::vector<int64_t>& cost = gen_cost_;
    cost.assign(S + 1, 0);
    for (int64_t s = 0; s < S; ++s) cost[s + 1] = cost[s] + pk.nrows[s] * (kRowCostKeys + seqs[s].past + pk.nrows[s]);
    parallel_run([&](int tid, int nthreads) {
      auto split = [&](int t) {  // first sequence of share t: where the cost passes t/nthreads of the total
        const int64_t target = cost[S] * t / nthreads;
        return t == 0 ? 0 : t == nthreads ? S : std::lower_bound(cost.begin(), cost.end(), target) - cost.begin();
      };
      const int64_t s0 = split(tid), s1 = split(tid + 1);
      if (s0 < s1) run(g, s0, s1);
    });
  } else {
    run(g, 0, S);
  }
}

}  // namespace medgym::model
