// Native test of shared-prefix packing (native/model/prefix.h): a forward + backward with prefix
// groups gives the logp, entropy and gradients of the same batch unshared (to float32 rounding),
// on every SIMD level and at 1 and 2 threads. Exit code 0 = pass.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "cpu/cpu_features.h"
#include "cpu/threadpool.h"
#include "model/model.h"

using namespace medgym;
using namespace medgym::model;

namespace {

struct Batch {
  std::vector<std::vector<int32_t>> tokens, mask;
  std::vector<std::vector<uint8_t>> pixels;
  std::vector<SeqInput> seqs;
  std::vector<PrefixGroup> groups;
  int64_t total = 0;
};

// Group 0: three sequences sharing a prompt with an image (continuations with an env image); group
// 1: two sequences whose prompt ends with its image; one lone sequence. Interleaved.
Batch make_batch(const Config& c, std::mt19937& rng, bool masked) {
  Batch b;
  auto text = [&](int n) {
    std::vector<int32_t> t;
    for (int i = 0; i < n; ++i) t.push_back(65 + static_cast<int32_t>(rng() % 26));
    return t;
  };
  auto image = [&] {
    std::vector<uint8_t> px(c.image_bytes());
    for (auto& x : px) x = static_cast<uint8_t>(rng());
    return px;
  };
  const int32_t img = static_cast<int32_t>(c.image_id);
  std::vector<int32_t> pa = {256};
  for (int32_t t : text(20)) pa.push_back(t);
  pa.push_back(img);
  for (int32_t t : text(15)) pa.push_back(t);
  std::vector<int32_t> pb = {256, 70, 71, img};
  const auto va = image(), vb = image();
  auto add = [&](const std::vector<int32_t>& prompt, const std::vector<uint8_t>& view, std::vector<int32_t> cont) {
    std::vector<int32_t> t = prompt, m(prompt.size(), 0);
    std::vector<uint8_t> px = view;
    for (int32_t x : cont) {
      t.push_back(x), m.push_back(1);
      if (x == img) {
        const auto v = image();
        px.insert(px.end(), v.begin(), v.end());
      }
    }
    b.tokens.push_back(t), b.mask.push_back(m), b.pixels.push_back(px);
  };
  auto with_image = [&](int n0, int n1) {
    auto t = text(n0);
    t.push_back(img);
    for (int32_t x : text(n1)) t.push_back(x);
    return t;
  };
  add(pa, va, text(9));          // 0: group 0
  add(pb, vb, text(30));         // 1: group 1
  add(pa, va, with_image(3, 34));  // 2: group 0
  add({256, 80}, {}, text(12));  // 3: lone
  add(pb, vb, with_image(1, 2));   // 4: group 1
  add(pa, va, text(40));         // 5: group 0
  b.groups = {{{0, 2, 5}, static_cast<int64_t>(pa.size())}, {{1, 4}, static_cast<int64_t>(pb.size())}};
  for (size_t s = 0; s < b.tokens.size(); ++s) {
    SeqInput q;
    q.tokens = b.tokens[s].data();
    q.n_tokens = static_cast<int64_t>(b.tokens[s].size());
    q.pixels = b.pixels[s].data();
    q.mask = masked ? b.mask[s].data() : nullptr;
    b.seqs.push_back(q);
    b.total += q.n_tokens;
  }
  return b;
}

int check(bool masked) {
  Config c;
  c.d = 32, c.H = 4, c.L = 2, c.T = 128, c.P = 8, c.S = 16, c.C = 3;
  Model m(c, 7);
  std::mt19937 rng(masked ? 3 : 4);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  // Weights far from the near-uniform init (as test/policy/common.ts randomizeWeights).
  for (const TensorInfo& t : m.layout.tensors) {
    const bool ln_w = t.name.find("ln_") != std::string::npos && t.name.find(".weight") != std::string::npos;
    const bool embed = t.name == "wte.weight" || t.name == "wpe.weight";
    const float sd = t.shape.size() == 1 ? 0.1f : embed ? 0.5f : 0.6f / std::sqrt(static_cast<float>(t.shape.back()));
    for (int64_t i = t.offset; i < t.offset + t.size; ++i) m.params[i] = (ln_w ? 1.0f : 0.0f) + (ln_w ? 0.2f : sd) * nd(rng);
  }
  Batch b = make_batch(c, rng, masked);
  int64_t n_images = 0;
  for (auto& t : b.tokens) n_images += std::count(t.begin(), t.end(), static_cast<int32_t>(c.image_id));
  m.validate(b.seqs, n_images);
  m.validate_groups(b.seqs, b.groups);
  std::vector<float> dl(b.total), de(b.total);
  for (auto& x : dl) x = nd(rng);
  for (auto& x : de) x = 0.3f * nd(rng);
  auto run = [&](const std::vector<PrefixGroup>& groups, std::vector<float>& logp, std::vector<float>& ent) {
    logp.assign(b.total, 0.0f), ent.assign(b.total, 0.0f);
    m.zero_grad();
    int64_t scored = m.forward(b.seqs, 0.9f, true, true, logp.data(), ent.data(), groups);
    m.backward(dl.data(), de.data());
    return scored;
  };
  std::vector<float> lp0, e0, lp1, e1;
  const int64_t s0 = run({}, lp0, e0);
  const std::vector<float> g0 = m.grads;
  const int64_t s1 = run(b.groups, lp1, e1);
  int fails = 0;
  if (s0 != s1) std::printf("FAIL scored %lld vs %lld\n", (long long)s1, (long long)s0), ++fails;
  if (!(m.packed_rows(b.seqs, b.groups) < m.packed_rows(b.seqs, {}))) std::printf("FAIL nothing shared\n"), ++fails;
  double dmax = 0;
  for (int64_t i = 0; i < b.total; ++i)
    dmax = std::max({dmax, std::fabs(static_cast<double>(lp1[i]) - lp0[i]), std::fabs(static_cast<double>(e1[i]) - e0[i])});
  if (!(dmax <= 1e-5)) std::printf("FAIL logp/entropy differ by %g\n", dmax), ++fails;
  for (const TensorInfo& t : m.layout.tensors) {
    double mx = 0, err = 0;
    for (int64_t i = t.offset; i < t.offset + t.size; ++i)
      mx = std::max(mx, std::fabs(static_cast<double>(g0[i]))),
      err = std::max(err, std::fabs(static_cast<double>(m.grads[i]) - g0[i]));
    if (!(mx > 0) || !(err <= 1e-5 * mx))
      std::printf("FAIL %s %s masked=%d: gradient max %g, shared differs by %g\n", simd_level_name(simd_level()),
                  t.name.c_str(), masked, mx, err),
          ++fails;
  }
  return fails;
}

}  // namespace

int main() {
  int fails = 0;
  for (SimdLevel level : {SimdLevel::Portable, SimdLevel::Avx2Fma, SimdLevel::Avx512}) {
    set_simd_level(level);
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      for (bool masked : {false, true}) fails += check(masked);
    }
  }
  std::printf("%s\n", fails ? "prefix_test: FAILED" : "prefix_test: all passed");
  return fails ? 1 : 0;
}
