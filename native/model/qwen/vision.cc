#include "model/qwen/vision.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "cpu/gemm.h"
#include "cpu/threadpool.h"
#include "model/qwen/ops.h"

namespace medgym::qwen {

namespace {

constexpr float kVisionEps = 1e-6f;
constexpr int64_t kQueryBlock = 64;  // query rows per attention task (bounds the score scratch)

// Rotary angles of each patch (processor order: 2×2 merge blocks of consecutive patches): the first
// hd/4 from its row, the next hd/4 from its column; [n, hd/2].
std::vector<float> patch_angles(const VisionConfig& v, const std::vector<Grid>& grids, int64_t n) {
  const int64_t half = v.hd() / 2, q = half / 2, m = v.merge;
  std::vector<float> inv(static_cast<size_t>(q));
  for (int64_t i = 0; i < q; ++i)  // as torch in float32: 1 / 10000^(2i / half)
    inv[static_cast<size_t>(i)] = 1.0f / std::pow(10000.0f, static_cast<float>(2 * i) / static_cast<float>(half));
  std::vector<float> ang(static_cast<size_t>(n * half));
  int64_t r = 0;
  for (const Grid& g : grids)
    for (int64_t t = 0; t < g.t; ++t)
      for (int64_t bh = 0; bh < g.h / m; ++bh)
        for (int64_t bw = 0; bw < g.w / m; ++bw)
          for (int64_t ih = 0; ih < m; ++ih)
            for (int64_t iw = 0; iw < m; ++iw, ++r) {
              float* a = ang.data() + r * half;
              const float hp = static_cast<float>(bh * m + ih), wp = static_cast<float>(bw * m + iw);
              for (int64_t i = 0; i < q; ++i) {
                a[i] = hp * inv[static_cast<size_t>(i)];
                a[q + i] = wp * inv[static_cast<size_t>(i)];
              }
            }
  return ang;
}

// Softmax(scale q k^T) v within each span [bounds[i], bounds[i+1]) of rows, per head. qkv rows are
// [q heads | k heads | v heads]; out [n, dim].
void span_attention(const VisionConfig& v, const float* qkv, const std::vector<int64_t>& bounds, float* out) {
  const int64_t dim = v.dim, hd = v.hd(), H = v.heads, ld = 3 * dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  struct Task {
    int64_t s, e, h, q0, q1;
  };
  std::vector<Task> tasks;
  int64_t longest = 0;
  for (size_t i = 0; i + 1 < bounds.size(); ++i) {
    const int64_t s = bounds[i], e = bounds[i + 1];
    if (e <= s) continue;
    longest = std::max(longest, e - s);
    for (int64_t h = 0; h < H; ++h)
      for (int64_t q0 = s; q0 < e; q0 += kQueryBlock) tasks.push_back({s, e, h, q0, std::min(e, q0 + kQueryBlock)});
  }
  const int64_t nt = static_cast<int64_t>(tasks.size());
  parallel_run([&](int tid, int nthreads) {
    int64_t t0, t1;
    static_chunk(nt, tid, nthreads, &t0, &t1);
    std::vector<float> S(static_cast<size_t>(kQueryBlock * longest));
    for (int64_t t = t0; t < t1; ++t) {
      const Task& k = tasks[static_cast<size_t>(t)];
      const int64_t nq = k.q1 - k.q0, nk = k.e - k.s;
      const float* q = qkv + k.q0 * ld + k.h * hd;
      const float* kk = qkv + k.s * ld + dim + k.h * hd;
      const float* vv = qkv + k.s * ld + 2 * dim + k.h * hd;
      sgemm(false, true, nq, nk, hd, scale, q, ld, kk, ld, 0.0f, S.data(), nk);
      for (int64_t i = 0; i < nq; ++i) {
        float* row = S.data() + i * nk;
        float mx = row[0];
        for (int64_t j = 1; j < nk; ++j) mx = std::max(mx, row[j]);
        double sum = 0;
        for (int64_t j = 0; j < nk; ++j) sum += (row[j] = std::exp(row[j] - mx));
        const float inv = static_cast<float>(1.0 / sum);
        for (int64_t j = 0; j < nk; ++j) row[j] *= inv;
      }
      sgemm(false, false, nq, hd, nk, 1.0f, S.data(), nk, vv, ld, 0.0f, out + k.q0 * dim + k.h * hd, dim);
    }
  });
}

// Rows of `unit` consecutive rows moved: dst unit i = src unit idx[i] (or the inverse when scatter).
void permute_units(const std::vector<int64_t>& idx, int64_t row_len, const float* src, float* dst, bool scatter) {
  const int64_t n = static_cast<int64_t>(idx.size());
  parallel_for(n, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t j = idx[static_cast<size_t>(i)];
      if (scatter) std::memcpy(dst + j * row_len, src + i * row_len, sizeof(float) * static_cast<size_t>(row_len));
      else std::memcpy(dst + i * row_len, src + j * row_len, sizeof(float) * static_cast<size_t>(row_len));
    }
  }, 64);
}

}  // namespace

int64_t vision_patches(const VisionConfig& v, const std::vector<Grid>& grids) {
  int64_t n = 0;
  for (size_t i = 0; i < grids.size(); ++i) {
    const Grid& g = grids[i];
    if (g.t < 1 || g.h < 1 || g.w < 1 || g.t > 64 || g.h > 16384 || g.w > 16384 || g.h % v.merge || g.w % v.merge)
      throw std::out_of_range("image " + std::to_string(i) + ": grid [" + std::to_string(g.t) + ", " + std::to_string(g.h) +
                              ", " + std::to_string(g.w) + "] must be positive, with h and w multiples of the merge size " +
                              std::to_string(v.merge));
    n += g.t * g.h * g.w;
    if (n > (int64_t(1) << 26)) throw std::out_of_range("more than 2^26 patches in one call");
  }
  return n;
}

WindowPlan window_plan(const VisionConfig& v, const std::vector<Grid>& grids) {
  WindowPlan p;
  p.bounds.push_back(0);
  const int64_t ws = v.window / v.merge / v.patch;  // window side in merged units
  int64_t base = 0;
  for (const Grid& g : grids) {
    const int64_t lh = g.h / v.merge, lw = g.w / v.merge;
    const int64_t nwh = (lh + ws - 1) / ws, nww = (lw + ws - 1) / ws;
    for (int64_t t = 0; t < g.t; ++t)
      for (int64_t wy = 0; wy < nwh; ++wy)
        for (int64_t wx = 0; wx < nww; ++wx) {
          int64_t count = 0;
          for (int64_t y = wy * ws; y < std::min(lh, (wy + 1) * ws); ++y)
            for (int64_t x = wx * ws; x < std::min(lw, (wx + 1) * ws); ++x, ++count)
              p.index.push_back(base + (t * lh + y) * lw + x);
          if (count) p.bounds.push_back(p.bounds.back() + count * v.unit());
        }
    base += g.t * lh * lw;
  }
  return p;
}

void vision_forward(const Config& c, const Weights& w, const float* pixels, const std::vector<Grid>& grids, float* out) {
  const VisionConfig& v = c.vision;
  const int64_t n = vision_patches(v, grids);
  if (n == 0) return;
  const int64_t dim = v.dim, half = v.hd() / 2, unit = v.unit();
  std::vector<float> x(static_cast<size_t>(n * dim)), h(static_cast<size_t>(n * dim));
  linear(n, w.patch_embed, pixels, x.data());
  std::vector<float> ang = patch_angles(v, grids, n);

  // Full-attention spans: one per image and temporal slice.
  std::vector<int64_t> full{0};
  for (const Grid& g : grids)
    for (int64_t t = 0; t < g.t; ++t) full.push_back(full.back() + g.h * g.w);
  WindowPlan plan;
  if (v.qwen25) {  // window order: each window's units contiguous (images stay in order)
    plan = window_plan(v, grids);
    permute_units(plan.index, unit * dim, x.data(), h.data(), false);
    x.swap(h);
    std::vector<float> a2(ang.size());
    permute_units(plan.index, unit * half, ang.data(), a2.data(), false);
    ang.swap(a2);
  }
  std::vector<float> cs(ang.size()), sn(ang.size());
  parallel_for(static_cast<int64_t>(ang.size()), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      cs[static_cast<size_t>(i)] = std::cos(ang[static_cast<size_t>(i)]);
      sn[static_cast<size_t>(i)] = std::sin(ang[static_cast<size_t>(i)]);
    }
  }, 4096);

  std::vector<float> qkv(static_cast<size_t>(n * 3 * dim)), att(static_cast<size_t>(n * dim));
  std::vector<float> mlp(static_cast<size_t>(n * (v.qwen25 ? 2 : 1) * v.mlp));
  auto norm = [&](const float* wt, const float* b, const float* in, float* o) {
    if (v.qwen25) rmsnorm(n, dim, in, wt, kVisionEps, o);
    else layernorm(n, dim, in, wt, b, kVisionEps, o);
  };
  for (int64_t bi = 0; bi < v.depth; ++bi) {
    const VisionBlock& b = w.vblocks[static_cast<size_t>(bi)];
    norm(b.norm1_w, b.norm1_b, x.data(), h.data());
    linear(n, b.qkv, h.data(), qkv.data());
    rotate(n, v.heads, v.hd(), qkv.data(), 3 * dim, cs.data(), sn.data());        // q
    rotate(n, v.heads, v.hd(), qkv.data() + dim, 3 * dim, cs.data(), sn.data());  // k
    span_attention(v, qkv.data(), v.is_full(bi) ? full : plan.bounds, att.data());
    linear(n, b.proj, att.data(), h.data());
    add_inplace(n * dim, x.data(), h.data());
    norm(b.norm2_w, b.norm2_b, x.data(), h.data());
    if (v.qwen25) {
      float* g = mlp.data();
      float* u = mlp.data() + n * v.mlp;
      linear(n, b.gate, h.data(), g);
      linear(n, b.up, h.data(), u);
      silu_mul(n, v.mlp, g, v.mlp, u, v.mlp);
      linear(n, b.down, g, h.data());
    } else {
      linear(n, b.fc1, h.data(), mlp.data());
      quick_gelu(n * v.mlp, mlp.data());
      linear(n, b.fc2, mlp.data(), h.data());
    }
    add_inplace(n * dim, x.data(), h.data());
  }
  // Merger: norm each patch, concatenate a unit's patches, Linear -> GELU -> Linear.
  norm(w.merger_norm_w, w.merger_norm_b, x.data(), h.data());
  const int64_t nm = n / unit;
  std::vector<float> m1(static_cast<size_t>(nm * dim * unit));
  linear(nm, w.merger_fc1, h.data(), m1.data());
  gelu_erf(nm * dim * unit, m1.data());
  if (!v.qwen25) return linear(nm, w.merger_fc2, m1.data(), out);
  std::vector<float> m2(static_cast<size_t>(nm * v.out));
  linear(nm, w.merger_fc2, m1.data(), m2.data());
  permute_units(plan.index, v.out, m2.data(), out, true);  // back to the processor's order
}

}  // namespace medgym::qwen
