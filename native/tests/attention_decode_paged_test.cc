// Native test of attention_decode_paged (the generation engine's decode over a paged, shared KV
// cache) on every SIMD level and head size it specializes (16, 32, 64, 128, and a generic one):
//  - against attention_decode_paged_ref (double accumulation),
//  - against attention_decode over the same keys stored contiguously,
//  - bit-identity of a query's output and lse however its keys are split into extents (every extent
//    but the last a multiple of 8 rows), and whatever other queries share the call: the contract
//    that lets forked sequences share a prompt's blocks.
// Exit code 0 = pass.
#include <cmath>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "cpu/attention_decode.h"
#include "cpu/cpu_features.h"

using namespace medgym;

namespace {

struct Case {
  int64_t H, hd;
  std::vector<int64_t> n_keys;  // per query
};

// One sequence's keys and values, head-major: K[h][j][d].
struct Kv {
  std::vector<float> k, v;
};

// Lays one query's keys into blocks of `cap` rows per slot, split at `splits` (key counts per extent),
// slots: K of head h at slot h, V of head h at slot H + h.
struct Paged {
  std::vector<std::vector<float>> blocks;
  std::vector<KVExtent> extents;
};

Paged lay_out(const Kv& s, int64_t H, int64_t hd, int64_t n, const std::vector<int64_t>& splits, int64_t cap) {
  Paged p;
  int64_t j0 = 0;
  for (int64_t rows : splits) {
    std::vector<float> b(static_cast<size_t>(2 * H * cap * hd), NAN);  // unused rows poisoned
    for (int64_t h = 0; h < H; ++h)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t d = 0; d < hd; ++d) {
          b[((h)*cap + r) * hd + d] = s.k[(h * n + j0 + r) * hd + d];
          b[((H + h) * cap + r) * hd + d] = s.v[(h * n + j0 + r) * hd + d];
        }
    p.blocks.push_back(std::move(b));
    j0 += rows;
  }
  for (size_t e = 0; e < splits.size(); ++e) p.extents.push_back({p.blocks[e].data(), splits[e], cap});
  return p;
}

// Splits n keys into extents: multiples of 8 except the last, sizes drawn from rng.
std::vector<int64_t> random_splits(std::mt19937& rng, int64_t n) {
  std::vector<int64_t> s;
  int64_t left = n;
  while (left > 0) {
    const int64_t eights = std::uniform_int_distribution<int64_t>(1, 4)(rng);
    const int64_t rows = std::min(left, eights * 8);
    s.push_back(left - rows > 0 ? rows : left);
    left -= s.back();
  }
  return s;
}

int run_case(const Case& c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t nq = static_cast<int64_t>(c.n_keys.size()), H = c.H, hd = c.hd;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  std::vector<Kv> seqs(nq);
  std::vector<float> q(static_cast<size_t>(nq * H * hd));
  for (auto& x : q) x = nd(rng);
  int64_t max_n = 0;
  for (int64_t i = 0; i < nq; ++i) {
    const int64_t n = c.n_keys[i];
    max_n = std::max(max_n, n);
    seqs[i].k.resize(H * n * hd);
    seqs[i].v.resize(H * n * hd);
    for (auto& x : seqs[i].k) x = 2.0f * nd(rng);
    for (auto& x : seqs[i].v) x = nd(rng);
  }
  // Two layouts of the same keys: one extent per query (cap = n), and random 8-multiple splits.
  std::vector<Paged> whole(nq), split(nq);
  std::vector<const KVExtent*> ext_whole(nq), ext_split(nq);
  for (int64_t i = 0; i < nq; ++i) {
    const int64_t n = c.n_keys[i];
    whole[i] = lay_out(seqs[i], H, hd, n, {n}, n + 3);
    split[i] = lay_out(seqs[i], H, hd, n, random_splits(rng, n), 40);
    ext_whole[i] = whole[i].extents.data();
    ext_split[i] = split[i].extents.data();
  }
  const PagedKV kv_whole{ext_whole.data(), 0, H}, kv_split{ext_split.data(), 0, H};
  const int64_t ostride = H * hd + 5;
  std::vector<float> out_a(nq * ostride, 0), out_b(nq * ostride, 0), out_r(nq * ostride, 0), lse_a(nq * H),
      lse_b(nq * H), lse_r(nq * H), scratch(max_n);
  attention_decode_paged(nq, H, hd, q.data(), H * hd, c.n_keys.data(), kv_whole, scale, out_a.data(), ostride,
                         lse_a.data(), scratch.data());
  attention_decode_paged(nq, H, hd, q.data(), H * hd, c.n_keys.data(), kv_split, scale, out_b.data(), ostride,
                         lse_b.data(), scratch.data());
  attention_decode_paged_ref(nq, H, hd, q.data(), H * hd, c.n_keys.data(), kv_split, scale, out_r.data(), ostride,
                             lse_r.data());
  const char* lvl = simd_level_name(simd_level());
  for (int64_t i = 0; i < nq * ostride; ++i) {
    const bool pad = i % ostride >= H * hd;
    if (std::memcmp(&out_a[i], &out_b[i], sizeof(float)) != 0) {
      std::printf("FAIL %s H=%lld hd=%lld: output %lld differs between extent splits (%.9g vs %.9g)\n", lvl,
                  (long long)H, (long long)hd, (long long)i, out_a[i], out_b[i]);
      return 1;
    }
    if (pad ? out_a[i] != 0.0f : !(std::fabs(out_a[i] - out_r[i]) <= 2e-6f * (1 + std::fabs(out_r[i])))) {
      std::printf("FAIL %s H=%lld hd=%lld: output %lld %.9g vs reference %.9g\n", lvl, (long long)H,
                  (long long)hd, (long long)i, out_a[i], out_r[i]);
      return 1;
    }
  }
  for (int64_t i = 0; i < nq * H; ++i)
    if (std::memcmp(&lse_a[i], &lse_b[i], sizeof(float)) != 0 || !(std::fabs(lse_a[i] - lse_r[i]) <= 2e-6f * (1 + std::fabs(lse_r[i])))) {
      std::printf("FAIL %s H=%lld hd=%lld: lse %lld %.9g / %.9g vs reference %.9g\n", lvl, (long long)H,
                  (long long)hd, (long long)i, lse_a[i], lse_b[i], lse_r[i]);
      return 1;
    }
  // Alone in the call, query 0 computes exactly what it computed beside the others.
  std::vector<float> out_1(ostride, 0), lse_1(H);
  attention_decode_paged(1, H, hd, q.data(), H * hd, c.n_keys.data(), kv_split, scale, out_1.data(), ostride,
                         lse_1.data(), scratch.data());
  if (std::memcmp(out_1.data(), out_b.data(), sizeof(float) * H * hd) != 0) {
    std::printf("FAIL %s H=%lld hd=%lld: query 0 alone differs from query 0 in a batch\n", lvl, (long long)H,
                (long long)hd);
    return 1;
  }
  // The contiguous decode kernel over query 0's keys (its last query row attends all n keys).
  const int64_t n0 = c.n_keys[0];
  std::vector<float> kc(n0 * H * hd), vc(n0 * H * hd), oc(H * hd), lc(H), sc(H * n0);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t j = 0; j < n0; ++j)
      for (int64_t d = 0; d < hd; ++d) {
        kc[(j * H + h) * hd + d] = seqs[0].k[(h * n0 + j) * hd + d];
        vc[(j * H + h) * hd + d] = seqs[0].v[(h * n0 + j) * hd + d];
      }
  const AttnView qv{q.data(), 0, H * hd, hd}, kv{kc.data(), 0, H * hd, hd}, vv{vc.data(), 0, H * hd, hd};
  const AttnViewOut ov{oc.data(), 0, H * hd, hd};
  attention_decode(H, 1, n0, hd, ov, lc.data(), qv, kv, vv, scale, sc.data());
  for (int64_t i = 0; i < H * hd; ++i)
    if (!(std::fabs(oc[i] - out_a[i]) <= 2e-6f * (1 + std::fabs(oc[i])))) {
      std::printf("FAIL %s H=%lld hd=%lld: paged %.9g vs contiguous decode %.9g at %lld\n", lvl, (long long)H,
                  (long long)hd, out_a[i], oc[i], (long long)i);
      return 1;
    }
  return 0;
}

}  // namespace

int main() {
  const Case cases[] = {
      {4, 16, {1, 9, 33}},       {4, 32, {8, 17, 64, 3}}, {2, 64, {70, 1, 129}},
      {3, 128, {24, 41}},        {2, 24, {13, 8, 50}},
  };
  int fails = 0, n = 0;
  for (SimdLevel level : {SimdLevel::Portable, SimdLevel::Avx2Fma, SimdLevel::Avx512}) {
    set_simd_level(level);
    for (const Case& c : cases) {
      fails += run_case(c, static_cast<uint32_t>(c.H * 1000 + c.hd + n));
      ++n;
    }
  }
  std::printf("attention_decode_paged: %d cases, %d failed\n", n, fails);
  return fails ? 1 : 0;
}
