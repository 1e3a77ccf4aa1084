// LayerNorm, GELU and softmax against their CPU twins. bf16 variants: inputs rounded to bf16 first,
// the CPU runs on the rounded values; bf16 outputs carry one rounding (<= 2^-8 relative, normwise
// bound 8e-3).
#include <cmath>

#include "cpu/gelu.h"
#include "cpu/layernorm.h"
#include "cpu/softmax.h"
#include "cuda/check/check.h"

namespace medgym::check {

namespace {

void layernorm_case(Checker& c, int64_t N, int64_t C, bool acc) {
  Rng rng(static_cast<uint64_t>(N * 1000 + C + acc));
  const std::string shape = fmt("N=%lld C=%lld acc=%d", (long long)N, (long long)C, acc);
  std::vector<float> x = rng.normal(N * C, 2.0f), w = rng.uniform(C, 0.5f, 1.5f), b = rng.uniform(C, -0.5f, 0.5f),
                     dy = rng.normal(N * C, 1.0f), dx0 = rng.normal(N * C, 1.0f), dw0 = rng.normal(C, 1.0f),
                     db0 = rng.normal(C, 1.0f);
  for (auto& v : x) v += 3.0f;  // a mean far from 0
  const float eps = 1e-5f;
  for (bool bf : {false, true}) {
    const std::string k = bf ? "layernorm_bf16" : "layernorm";
    const std::vector<float> xs = bf ? round_bf16(x) : x, dys = bf ? round_bf16(dy) : dy,
                             dx0s = bf ? round_bf16(dx0) : dx0;
    std::vector<float> out(N * C), mean(N), rstd(N), dx = dx0s, dw = dw0, db = db0;
    layernorm_forward(out.data(), mean.data(), rstd.data(), xs.data(), w.data(), b.data(), N, C, eps);
    layernorm_backward(dx.data(), dw.data(), db.data(), dys.data(), xs.data(), w.data(), mean.data(), rstd.data(), N,
                       C, acc);
    auto dw_g = upload(w), db_g = upload(b), dmean = upload(std::vector<float>(N)), drstd = upload(std::vector<float>(N));
    auto gdw = upload(dw0), gdb = upload(db0);
    std::vector<float> got_out, got_dx;
    if (!bf) {
      auto dx_in = upload(xs), dout = upload(std::vector<float>(N * C)), ddy = upload(dys), ddx = upload(dx0s);
      cuda::layernorm_forward(dout.get(), dmean.get(), drstd.get(), dx_in.get(), dw_g.get(), db_g.get(), N, C, eps,
                              nullptr);
      cuda::layernorm_backward(ddx.get(), gdw.get(), gdb.get(), ddy.get(), dx_in.get(), dw_g.get(), dmean.get(),
                               drstd.get(), N, C, acc, nullptr);
      got_out = download(dout), got_dx = download(ddx);
    } else {
      auto dx_in = upload(to_bf16(x)), dout = upload(std::vector<Bf16>(N * C)), ddy = upload(to_bf16(dy)),
           ddx = upload(to_bf16(dx0));
      cuda::layernorm_forward_bf16(dout.get(), dmean.get(), drstd.get(), dx_in.get(), dw_g.get(), db_g.get(), N, C,
                                   eps, nullptr);
      cuda::layernorm_backward_bf16(ddx.get(), gdw.get(), gdb.get(), ddy.get(), dx_in.get(), dw_g.get(), dmean.get(),
                                    drstd.get(), N, C, acc, nullptr);
      got_out = from_bf16(download(dout)), got_dx = from_bf16(download(ddx));
    }
    const double act = bf ? 8e-3 : 1e-5;  // bf16 outputs: one rounding
    c.expect(k, shape, "out", compare(got_out, out), act);
    c.expect(k, shape, "mean", compare(download(dmean), mean), 1e-5);
    c.expect(k, shape, "rstd", compare(download(drstd), rstd), 1e-5, Metric::Elementwise);
    c.expect(k, shape, "dinp", compare(got_dx, dx), act);
    c.expect(k, shape, "dweight", compare(download(gdw), dw), 1e-5);
    c.expect(k, shape, "dbias", compare(download(gdb), db), 1e-5);
  }
}

void gelu_case(Checker& c, int64_t n, bool acc) {
  Rng rng(static_cast<uint64_t>(n + acc));
  const std::string shape = fmt("n=%lld acc=%d", (long long)n, acc);
  std::vector<float> x = rng.uniform(n, -8.0f, 8.0f), dy = rng.normal(n, 1.0f), dx0 = rng.normal(n, 1.0f);
  for (bool bf : {false, true}) {
    const std::string k = bf ? "gelu_bf16" : "gelu";
    const std::vector<float> xs = bf ? round_bf16(x) : x, dys = bf ? round_bf16(dy) : dy,
                             dx0s = bf ? round_bf16(dx0) : dx0;
    std::vector<float> out(n), dx = dx0s;
    gelu_forward(out.data(), xs.data(), n);
    gelu_backward(dx.data(), xs.data(), dys.data(), n, acc);
    std::vector<float> got_out, got_dx;
    if (!bf) {
      auto dxin = upload(xs), dout = upload(std::vector<float>(n)), ddy = upload(dys), ddx = upload(dx0s);
      cuda::gelu_forward(dout.get(), dxin.get(), n, nullptr);
      cuda::gelu_backward(ddx.get(), dxin.get(), ddy.get(), n, acc, nullptr);
      got_out = download(dout), got_dx = download(ddx);
    } else {
      auto dxin = upload(to_bf16(x)), dout = upload(std::vector<Bf16>(n)), ddy = upload(to_bf16(dy)),
           ddx = upload(to_bf16(dx0));
      cuda::gelu_forward_bf16(dout.get(), dxin.get(), n, nullptr);
      cuda::gelu_backward_bf16(ddx.get(), dxin.get(), ddy.get(), n, acc, nullptr);
      got_out = from_bf16(download(dout)), got_dx = from_bf16(download(ddx));
    }
    // fp32: element by element (floor 1e-6: gelu(x) ~ 0 far in the negative tail); bf16: normwise.
    if (!bf) {
      c.expect(k, shape, "out", compare(got_out, out, 1e-6), 1e-5, Metric::Elementwise);
      c.expect(k, shape, "dinp", compare(got_dx, dx), 1e-5);
    } else {
      c.expect(k, shape, "out", compare(got_out, round_bf16(out)), 8e-3);
      c.expect(k, shape, "dinp", compare(got_dx, round_bf16(dx)), 8e-3);
    }
  }
}

void softmax_case(Checker& c, int64_t N, int64_t C, bool acc) {
  Rng rng(static_cast<uint64_t>(N * 7 + C + acc));
  const std::string shape = fmt("N=%lld C=%lld acc=%d", (long long)N, (long long)C, acc);
  std::vector<float> x = rng.normal(N * C, 3.0f), dy = rng.normal(N * C, 1.0f), dx0 = rng.normal(N * C, 1.0f);
  for (int64_t i = 0; i < N * C; i += 5) x[i] = -INFINITY;       // masked entries
  if (N > 1)
    for (int64_t j = 0; j < C; ++j) x[C + j] = -INFINITY;  // a fully masked row
  const float scale = 0.7f;
  std::vector<float> p(N * C), dx = dx0;
  softmax_forward(p.data(), x.data(), N, C, scale);
  softmax_backward(dx.data(), p.data(), dy.data(), N, C, scale, acc);
  auto dxin = upload(x), dp = upload(std::vector<float>(N * C)), ddy = upload(dy), ddx = upload(dx0), dpin = upload(p);
  cuda::softmax_forward(dp.get(), dxin.get(), N, C, scale, nullptr);
  cuda::softmax_backward(ddx.get(), dpin.get(), ddy.get(), N, C, scale, acc, nullptr);  // from the CPU's p
  c.expect("softmax", shape, "out", compare(download(dp), p), 1e-5);
  c.expect("softmax", shape, "dinp", compare(download(ddx), dx), 1e-5);
}

}  // namespace

void check_layers(Checker& c) {
  const int64_t ln[][2] = {{1, 1}, {7, 33}, {64, 768}, {300, 1000}, {5, 4097}, {2048, 256}};
  for (const auto& s : ln)
    for (bool acc : {false, true}) layernorm_case(c, s[0], s[1], acc);
  for (int64_t n : {int64_t(1), int64_t(7), int64_t(1000), int64_t(1 << 20) + 3})
    for (bool acc : {false, true}) gelu_case(c, n, acc);
  const int64_t sm[][2] = {{1, 1}, {5, 7}, {64, 300}, {8, 5000}, {33, 2049}};
  for (const auto& s : sm)
    for (bool acc : {false, true}) softmax_case(c, s[0], s[1], acc);
}

}  // namespace medgym::check
