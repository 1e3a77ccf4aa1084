// Shared-prefix packing (see prefix.h): a GRPO group's G trajectories share their prompt, so its
// rows are computed once instead of G times. Exact: every row sees the same keys at the same
// positions as in the unshared batch, so only the rounding of sums changes.
#include "model/prefix.h"

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "cpu/attention.h"
#include "cpu/threadpool.h"

namespace medgym::model {

bool shares_rows(const PrefixGroup& g) { return g.seqs.size() >= 2 && g.length >= 2; }

namespace {
std::string group_name(size_t k) { return "prefix group " + std::to_string(k); }
bool scored_at(const SeqInput& q, int64_t i) { return !q.mask || q.mask[i] != 0; }
}  // namespace

void Model::validate_groups(const std::vector<SeqInput>& seqs, const std::vector<PrefixGroup>& groups) const {
  std::vector<int64_t> owner(seqs.size(), -1);
  for (size_t k = 0; k < groups.size(); ++k) {
    const PrefixGroup& g = groups[k];
    if (g.seqs.empty()) throw std::out_of_range(group_name(k) + " has no sequence (`prefixGroup`)");
    for (int64_t s : g.seqs) {
      if (s < 0 || s >= static_cast<int64_t>(seqs.size()))
        throw std::out_of_range(group_name(k) + " names sequence " + std::to_string(s) + " of a batch of " +
                                std::to_string(seqs.size()) + " (`prefixGroup`)");
      if (owner[s] >= 0)
        throw std::out_of_range("sequence " + std::to_string(s) + " is in prefix groups " + std::to_string(owner[s]) +
                                " and " + std::to_string(k) + " (`prefixGroup`)");
      owner[s] = static_cast<int64_t>(k);
    }
    const SeqInput& f = seqs[g.seqs[0]];
    if (g.length < 0) throw std::out_of_range(group_name(k) + " has a negative length (`prefixLength`)");
    for (int64_t s : g.seqs) {
      const SeqInput& q = seqs[s];
      if (g.length > q.n_tokens)
        throw std::out_of_range(group_name(k) + " shares " + std::to_string(g.length) + " tokens but sequence " +
                                std::to_string(s) + " has " + std::to_string(q.n_tokens) + " (`prefixLength`)");
      auto differ = [&](int64_t i, const char* what) {
        throw std::out_of_range("sequences " + std::to_string(g.seqs[0]) + " and " + std::to_string(s) + " of " +
                                group_name(k) + " differ in their " + what + " at token " + std::to_string(i) +
                                ", inside the shared prefix of " + std::to_string(g.length) + " tokens (`prefixLength`)");
      };
      int64_t img = 0;
      for (int64_t i = 0; i < g.length; ++i) {
        if (q.tokens[i] != f.tokens[i]) differ(i, "ids");
        if (scored_at(q, i) != scored_at(f, i)) differ(i, "mask");
        if (q.tokens[i] != cfg.image_id) continue;
        const int64_t nb = cfg.image_bytes();
        if (std::memcmp(q.pixels + img * nb, f.pixels + img * nb, static_cast<size_t>(nb)) != 0) differ(i, "image");
        ++img;
      }
    }
  }
}

int64_t Model::packed_rows(const std::vector<SeqInput>& seqs, const std::vector<PrefixGroup>& groups) const {
  int64_t rows = 0;
  for (const SeqInput& q : seqs) rows += expanded_length(q.tokens, q.n_tokens);
  for (const PrefixGroup& g : groups)
    if (shares_rows(g))
      rows -= static_cast<int64_t>(g.seqs.size() - 1) * expanded_length(seqs[g.seqs[0]].tokens, g.length - 1);
  return rows;
}

void Model::pack_shared(const std::vector<SeqInput>& seqs, const std::vector<PrefixGroup>& groups, Packed& pk,
                        std::vector<SeqInput>& segs) const {
  const size_t n = seqs.size();
  std::vector<int64_t> tok_base(n + 1, 0);  // first token of each sequence in the flat outputs
  for (size_t s = 0; s < n; ++s) tok_base[s + 1] = tok_base[s] + seqs[s].n_tokens;
  segs.clear();
  std::vector<int64_t> seg_base, seg_prefix;  // per segment: its first token in the outputs, its prefix
  std::vector<const PrefixGroup*> shared;
  std::vector<int64_t> shared_seg;
  std::vector<char> grouped(n, 0);
  for (const PrefixGroup& g : groups) {
    if (!shares_rows(g)) continue;
    const SeqInput& f = seqs[g.seqs[0]];
    const int64_t cut = g.length - 1;  // the prefix segment; token `cut` opens every continuation
    int64_t images = 0;
    for (int64_t i = 0; i < cut; ++i) images += f.tokens[i] == cfg.image_id;
    const int64_t prefix_rows = expanded_length(f.tokens, cut);
    const int64_t pseg = static_cast<int64_t>(segs.size());
    SeqInput p = f;
    p.n_tokens = cut;
    segs.push_back(p), seg_base.push_back(tok_base[g.seqs[0]]), seg_prefix.push_back(-1);
    for (int64_t s : g.seqs) {
      SeqInput c = seqs[s];
      c.tokens += cut, c.n_tokens -= cut, c.pixels += images * cfg.image_bytes(), c.past = prefix_rows;
      if (c.mask) c.mask += cut;
      segs.push_back(c), seg_base.push_back(tok_base[s] + cut), seg_prefix.push_back(pseg);
      grouped[s] = 1;
    }
    shared.push_back(&g), shared_seg.push_back(pseg);
  }
  for (size_t s = 0; s < n; ++s)
    if (!grouped[s]) segs.push_back(seqs[s]), seg_base.push_back(tok_base[s]), seg_prefix.push_back(-1);

  pack(segs, pk, true);
  // pack() numbered the targets over the segments' tokens: renumber them as tokens of the batch.
  int64_t pb = 0;
  for (size_t k = 0; k < segs.size(); ++k) {
    for (int64_t r = pk.row0[k]; r < pk.row0[k] + pk.nrows[k]; ++r)
      if (pk.target_token[r] >= 0) pk.target_token[r] += seg_base[k] - pb;
    pb += segs[k].n_tokens;
  }
  pk.prefix_of = seg_prefix;
  // A prefix's last row predicts token `cut` (the same id and mask in every member).
  for (size_t k = 0; k < shared.size(); ++k) {
    const PrefixGroup& g = *shared[k];
    const SeqInput& f = seqs[g.seqs[0]];
    const int64_t cut = g.length - 1, r = pk.row0[shared_seg[k]] + pk.nrows[shared_seg[k]] - 1;
    if (f.tokens[cut] != cfg.image_id && scored_at(f, cut)) {
      pk.targets[r] = f.tokens[cut];
      pk.target_token[r] = tok_base[g.seqs[0]] + cut;
      ++pk.scored;
    }
  }
  // The other members' copies of each scored prefix row (CSR over rows).
  pk.extra_off.assign(pk.N + 1, 0);
  for (size_t k = 0; k < shared.size(); ++k) {
    const int64_t seg = shared_seg[k], extra = static_cast<int64_t>(shared[k]->seqs.size()) - 1;
    for (int64_t r = pk.row0[seg]; r < pk.row0[seg] + pk.nrows[seg]; ++r)
      if (pk.target_token[r] >= 0) pk.extra_off[r + 1] = extra;
  }
  for (int64_t r = 0; r < pk.N; ++r) pk.extra_off[r + 1] += pk.extra_off[r];
  pk.extra_tok.resize(pk.extra_off[pk.N]);
  for (size_t k = 0; k < shared.size(); ++k) {
    const std::vector<int64_t>& members = shared[k]->seqs;
    const int64_t seg = shared_seg[k], base0 = tok_base[members[0]];
    for (int64_t r = pk.row0[seg]; r < pk.row0[seg] + pk.nrows[seg]; ++r) {
      if (pk.target_token[r] < 0) continue;
      int64_t at = pk.extra_off[r];
      for (size_t m = 1; m < members.size(); ++m) pk.extra_tok[at++] = tok_base[members[m]] + pk.target_token[r] - base0;
    }
  }
  pk.scored += pk.extra_off[pk.N];
}

namespace {

struct Heads {
  int64_t d, H, hd;
  float scale;
  explicit Heads(const Config& c)
      : d(c.d), H(c.H), hd(c.hd()), scale(1.0f / std::sqrt(static_cast<float>(c.hd()))) {}
};

// K|V rows ([rows, 2d]: k then v, as they sit in each qkv row) of the prefix, then of the segment.
void gather_kv(float* kv, const float* qkv, int64_t d, int64_t p0, int64_t pn, int64_t r0, int64_t n) {
  for (int64_t j = 0; j < pn; ++j) std::memcpy(kv + j * 2 * d, qkv + (p0 + j) * 3 * d + d, 2 * d * sizeof(float));
  for (int64_t j = 0; j < n; ++j) std::memcpy(kv + (pn + j) * 2 * d, qkv + (r0 + j) * 3 * d + d, 2 * d * sizeof(float));
}

}  // namespace

void run_attention_shared(const Config& c, const Packed& pk, const float* qkv, float* atty, float* lse) {
  const Heads hh(c);
  const int64_t d = hh.d, H = hh.H, hd = hh.hd;
  const int64_t nseg = static_cast<int64_t>(pk.row0.size());
  parallel_for(nseg, [&](int64_t b, int64_t e) {
    std::vector<float> kv;
    for (int64_t s = b; s < e; ++s) {
      const int64_t r0 = pk.row0[s], n = pk.nrows[s], p = pk.prefix_of[s];
      if (n == 0) continue;
      const AttnView q{qkv + r0 * 3 * d, 0, 3 * d, hd};
      const AttnViewOut o{atty + r0 * d, 0, d, hd};
      if (p < 0) {  // a prefix or an unshared sequence: causal over its own rows
        attention_forward(AttnDims{1, H, n, n, hd}, o, lse + H * r0, q, AttnView{qkv + r0 * 3 * d + d, 0, 3 * d, hd},
                          AttnView{qkv + r0 * 3 * d + 2 * d, 0, 3 * d, hd}, nullptr, hh.scale);
        continue;
      }
      // A continuation: its queries sit after the prefix's pn rows (Tk - Tq = pn), as in the unshared sequence.
      const int64_t pn = pk.nrows[p];
      kv.resize((pn + n) * 2 * d);
      gather_kv(kv.data(), qkv, d, pk.row0[p], pn, r0, n);
      attention_forward(AttnDims{1, H, n, pn + n, hd}, o, lse + H * r0, q, AttnView{kv.data(), 0, 2 * d, hd},
                        AttnView{kv.data() + d, 0, 2 * d, hd}, nullptr, hh.scale);
    }
  });
}

void attention_backward_shared(const Config& c, const Packed& pk, const float* qkv, const float* atty,
                               const float* lse, const float* datty, float* dqkv, std::vector<float>& scratch) {
  const Heads hh(c);
  const int64_t d = hh.d, H = hh.H, hd = hh.hd;
  const int64_t nseg = static_cast<int64_t>(pk.row0.size());
  // Each continuation's dK|dV of its prefix rows: [pn, 2d] at off[s].
  std::vector<int64_t> off(nseg, 0);
  int64_t total = 0;
  for (int64_t s = 0; s < nseg; ++s)
    if (pk.prefix_of[s] >= 0) off[s] = total, total += pk.nrows[pk.prefix_of[s]] * 2 * d;
  if (scratch.size() < static_cast<size_t>(total)) scratch.resize(total);

  parallel_for(nseg, [&](int64_t b, int64_t e) {
    std::vector<float> kv, dkv;
    for (int64_t s = b; s < e; ++s) {
      const int64_t r0 = pk.row0[s], n = pk.nrows[s], p = pk.prefix_of[s];
      if (n == 0) continue;
      const float* q = qkv + r0 * 3 * d;
      float* dq = dqkv + r0 * 3 * d;
      const AttnView dout{datty + r0 * d, 0, d, hd}, out{atty + r0 * d, 0, d, hd}, qv{q, 0, 3 * d, hd};
      if (p < 0) {
        attention_backward(AttnDims{1, H, n, n, hd}, AttnViewOut{dq, 0, 3 * d, hd}, AttnViewOut{dq + d, 0, 3 * d, hd},
                           AttnViewOut{dq + 2 * d, 0, 3 * d, hd}, dout, out, lse + H * r0, qv,
                           AttnView{q + d, 0, 3 * d, hd}, AttnView{q + 2 * d, 0, 3 * d, hd}, nullptr, hh.scale, false);
        continue;
      }
      const int64_t pn = pk.nrows[p];
      kv.resize((pn + n) * 2 * d);
      dkv.resize((pn + n) * 2 * d);
      gather_kv(kv.data(), qkv, d, pk.row0[p], pn, r0, n);
      attention_backward(AttnDims{1, H, n, pn + n, hd}, AttnViewOut{dq, 0, 3 * d, hd},
                         AttnViewOut{dkv.data(), 0, 2 * d, hd}, AttnViewOut{dkv.data() + d, 0, 2 * d, hd}, dout, out,
                         lse + H * r0, qv, AttnView{kv.data(), 0, 2 * d, hd}, AttnView{kv.data() + d, 0, 2 * d, hd},
                         nullptr, hh.scale, false);
      std::memcpy(scratch.data() + off[s], dkv.data(), pn * 2 * d * sizeof(float));
      for (int64_t j = 0; j < n; ++j)
        std::memcpy(dq + j * 3 * d + d, dkv.data() + (pn + j) * 2 * d, 2 * d * sizeof(float));
    }
  });
  // Each prefix row's dK|dV += its members' contributions, in member (segment) order.
  std::vector<std::vector<int64_t>> members(nseg);
  for (int64_t s = 0; s < nseg; ++s)
    if (pk.prefix_of[s] >= 0) members[pk.prefix_of[s]].push_back(s);
  for (int64_t p = 0; p < nseg; ++p) {
    if (members[p].empty()) continue;
    const int64_t p0 = pk.row0[p];
    parallel_for(pk.nrows[p], [&](int64_t j0, int64_t j1) {
      for (int64_t j = j0; j < j1; ++j) {
        float* dst = dqkv + (p0 + j) * 3 * d + d;
        for (int64_t m : members[p]) {
          const float* src = scratch.data() + off[m] + j * 2 * d;
          for (int64_t x = 0; x < 2 * d; ++x) dst[x] += src[x];
        }
      }
    }, 32);
  }
}

void scatter_row_outputs(const Packed& pk, const float* row_logp, const float* row_entropy, float* logp,
                         float* entropy) {
  const bool extra = !pk.extra_off.empty();
  for (int64_t r = 0; r < pk.N; ++r) {
    const int64_t t = pk.target_token[r];
    if (t < 0) continue;
    const float e = row_entropy ? row_entropy[r] : 0.0f;
    logp[t] = row_logp[r];
    if (entropy) entropy[t] = e;
    if (!extra) continue;
    for (int64_t k = pk.extra_off[r]; k < pk.extra_off[r + 1]; ++k) {
      logp[pk.extra_tok[k]] = row_logp[r];
      if (entropy) entropy[pk.extra_tok[k]] = e;
    }
  }
}

void gather_row_upstream(const Packed& pk, const float* dlogp_tok, const float* dent_tok, float* dlogp_rows,
                         float* dent_rows) {
  const bool extra = !pk.extra_off.empty();
  for (int64_t r = 0; r < pk.N; ++r) {
    const int64_t t = pk.target_token[r];
    if (t < 0) continue;
    float g = dlogp_tok[t], u = dent_tok ? dent_tok[t] : 0.0f;
    if (extra)
      for (int64_t k = pk.extra_off[r]; k < pk.extra_off[r + 1]; ++k) {
        g += dlogp_tok[pk.extra_tok[k]];
        if (dent_tok) u += dent_tok[pk.extra_tok[k]];
      }
    dlogp_rows[r] = g;
    if (dent_tok) dent_rows[r] = u;
  }
}

}  // namespace medgym::model
