// The row kernels of cuda/rowops.h against the plain loops in their comments, and batched decode
// attention over a pool of cache slots (kv_slot) against the CPU's attention_decode per sequence.
// Gathers, scatters, copies and the segmented sums (serial order by contract) must be exact; the
// column sums (chunked order) and the attention are within the kernels' usual 1e-5.
#include <cmath>

#include "cpu/attention_decode.h"
#include "cuda/check/check.h"
#include "cuda/rowops.h"

namespace medgym::check {

namespace {

void check_rows(Checker& c, int64_t N, int64_t n) {
  Rng rng(static_cast<uint64_t>(N * 31 + n));
  const std::string shape = fmt("N=%lld n=%lld", (long long)N, (long long)n);
  const std::vector<float> x = rng.normal(N * n, 1.0f), b = rng.normal(n, 1.0f);
  std::vector<float> want(N * n), want0(N * n);
  for (int64_t r = 0; r < N; ++r)
    for (int64_t i = 0; i < n; ++i) want[r * n + i] = x[r * n + i] + b[i], want0[r * n + i] = b[i];
  auto dx = upload(x), db = upload(b);
  DeviceBuffer<float> out(N * n);
  cuda::rows_bias(out.get(), dx.get(), db.get(), N, n, nullptr);
  c.expect("rows_bias", shape, "x + b", compare(download(out), want), 0.0, Metric::Absolute);
  cuda::rows_bias(dx.get(), dx.get(), db.get(), N, n, nullptr);  // in place
  c.expect("rows_bias", shape, "x + b in place", compare(download(dx), want), 0.0, Metric::Absolute);
  cuda::rows_bias(out.get(), nullptr, db.get(), N, n, nullptr);
  c.expect("rows_bias", shape, "b", compare(download(out), want0), 0.0, Metric::Absolute);

  // column sums: serial double reference, chunked float on the device
  std::vector<float> acc = rng.normal(n, 1.0f), colw(n);
  for (int64_t i = 0; i < n; ++i) {
    double s = acc[i];
    for (int64_t r = 0; r < N; ++r) s += x[r * n + i];
    colw[i] = static_cast<float>(s);
  }
  auto dxx = upload(x), dacc = upload(acc);
  cuda::column_sum_add(dacc.get(), dxx.get(), N, n, nullptr);
  c.expect("column_sum_add", shape, "out", compare(download(dacc), colw), 1e-5);
  const std::vector<Bf16> xb = to_bf16(x);
  const std::vector<float> xr = from_bf16(xb);
  for (int64_t i = 0; i < n; ++i) {
    double s = acc[i];
    for (int64_t r = 0; r < N; ++r) s += xr[r * n + i];
    colw[i] = static_cast<float>(s);
  }
  auto dxb = upload(xb);
  auto dacc2 = upload(acc);
  cuda::column_sum_add_bf16(dacc2.get(), dxb.get(), N, n, nullptr);
  c.expect("column_sum_add_bf16", shape, "out", compare(download(dacc2), colw), 1e-5);
}

void check_gathers(Checker& c, int64_t tables, int64_t N, int64_t d) {
  Rng rng(static_cast<uint64_t>(tables * 7 + N * 3 + d));
  const std::string shape = fmt("table=%lld N=%lld d=%lld", (long long)tables, (long long)N, (long long)d);
  const std::vector<float> base = rng.normal(tables * d, 1.0f), src = rng.normal(N * d, 1.0f);
  // gather_rows_sum: 3 terms per row, the last one absent in every other row
  std::vector<int64_t> offs(N * 3);
  std::vector<float> want(N * d);
  for (int64_t r = 0; r < N; ++r) {
    for (int j = 0; j < 3; ++j) offs[r * 3 + j] = rng.integer(0, tables - 1) * d;
    if (r % 2) offs[r * 3 + 2] = -1;
    for (int64_t i = 0; i < d; ++i) {
      float v = base[offs[r * 3] + i] + base[offs[r * 3 + 1] + i];
      if (offs[r * 3 + 2] >= 0) v = v + base[offs[r * 3 + 2] + i];
      want[r * d + i] = v;
    }
  }
  auto dbase = upload(base), dsrc = upload(src);
  auto doffs = upload(offs);
  DeviceBuffer<float> out(N * d);
  cuda::gather_rows_sum(out.get(), dbase.get(), doffs.get(), 3, N, d, nullptr);
  c.expect("gather_rows_sum", shape, "out", compare(download(out), want), 0.0, Metric::Absolute);

  // gather_rows / add_rows_indexed over distinct rows of src
  const int64_t n = N / 2;
  std::vector<int64_t> rows(n);
  for (int64_t k = 0; k < n; ++k) rows[k] = N - 1 - 2 * k;  // distinct, descending
  std::vector<float> g(n * d), added = src;
  for (int64_t k = 0; k < n; ++k)
    for (int64_t i = 0; i < d; ++i) g[k * d + i] = src[rows[k] * d + i];
  auto drows = upload(rows);
  DeviceBuffer<float> gout(n * d);
  cuda::gather_rows(gout.get(), dsrc.get(), drows.get(), n, d, nullptr);
  c.expect("gather_rows", shape, "out", compare(download(gout), g), 0.0, Metric::Absolute);
  const std::vector<float> add = rng.normal(n * d, 1.0f);
  for (int64_t k = 0; k < n; ++k)
    for (int64_t i = 0; i < d; ++i) added[rows[k] * d + i] += add[k * d + i];
  auto dadd = upload(add), dsrc2 = upload(src);
  cuda::add_rows_indexed(dsrc2.get(), drows.get(), dadd.get(), n, d, nullptr);
  c.expect("add_rows_indexed", shape, "out", compare(download(dsrc2), added), 0.0, Metric::Absolute);

  // segment_rows_add: each source row to two table rows, serial order per destination
  std::vector<std::vector<int64_t>> by_dst(tables);
  for (int64_t r = 0; r < N; ++r) {
    by_dst[rng.integer(0, tables - 1)].push_back(r);
    by_dst[rng.integer(0, tables - 1)].push_back(r);
  }
  std::vector<int64_t> dst, start, srows;
  std::vector<float> table = base;
  for (int64_t t = 0; t < tables; ++t) {
    if (by_dst[t].empty()) continue;
    dst.push_back(t * d), start.push_back(static_cast<int64_t>(srows.size()));
    for (int64_t r : by_dst[t]) {
      srows.push_back(r);
      for (int64_t i = 0; i < d; ++i) table[t * d + i] += src[r * d + i];
    }
  }
  start.push_back(static_cast<int64_t>(srows.size()));
  auto ddst = upload(dst), dstart = upload(start), dsr = upload(srows);
  auto dtab = upload(base);
  cuda::segment_rows_add(dtab.get(), ddst.get(), dstart.get(), dsr.get(), dsrc.get(), d,
                         static_cast<int64_t>(dst.size()), nullptr);
  c.expect("segment_rows_add", shape, "table (serial order: exact)", compare(download(dtab), table), 0.0,
           Metric::Absolute);
}

// Decode over a pool: caches in slots {3, 0, 5}, written by kv_cache_write from qkv rows, read by one
// batched attention_decode with kv_slot; the CPU decodes each sequence on its own contiguous cache.
void check_decode_slots(Checker& c, int64_t H, int64_t hd, int64_t Tq) {
  Rng rng(static_cast<uint64_t>(H * 100 + hd + Tq));
  const std::string shape = fmt("H=%lld hd=%lld Tq=%lld", (long long)H, (long long)hd, (long long)Tq);
  const int64_t C = H * hd, cap = 300, slots = 6;
  const std::vector<int32_t> slot = {3, 0, 5};
  const std::vector<int32_t> len = {static_cast<int32_t>(Tq), 77, 290};  // keys per sequence after this step
  const int64_t B = static_cast<int64_t>(slot.size());
  int64_t maxlen = 0;
  for (int32_t l : len) maxlen = std::max<int64_t>(maxlen, l);
  // Full K/V history per sequence (rows 0..len-1) as [len, C]; the new Tq rows come through qkv.
  std::vector<std::vector<float>> hk(B), hv(B);
  DeviceBuffer<float> kc(slots * H * cap * hd), vc(slots * H * cap * hd);
  cuda::memset_zero(kc.get(), kc.size() * sizeof(float), nullptr);
  cuda::memset_zero(vc.get(), vc.size() * sizeof(float), nullptr);
  std::vector<float> qkv(B * Tq * 3 * C);
  std::vector<int32_t> row_slot(B * Tq), row_pos(B * Tq);
  for (int64_t b = 0; b < B; ++b) {
    hk[b] = rng.normal(len[b] * C, 1.0f), hv[b] = rng.normal(len[b] * C, 1.0f);
    // the old rows go straight into the slot (head-major), the new ones through kv_cache_write
    std::vector<float> kslot(H * cap * hd, 0.0f), vslot(H * cap * hd, 0.0f);
    for (int64_t t = 0; t < len[b] - Tq; ++t)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t e = 0; e < hd; ++e) {
          kslot[(h * cap + t) * hd + e] = hk[b][t * C + h * hd + e];
          vslot[(h * cap + t) * hd + e] = hv[b][t * C + h * hd + e];
        }
    cuda::copy_to_device(kc.get() + slot[b] * H * cap * hd, kslot.data(), kslot.size() * sizeof(float), nullptr);
    cuda::copy_to_device(vc.get() + slot[b] * H * cap * hd, vslot.data(), vslot.size() * sizeof(float), nullptr);
    const std::vector<float> q = rng.normal(Tq * C, 1.0f);
    for (int64_t i = 0; i < Tq; ++i) {
      const int64_t r = b * Tq + i, t = len[b] - Tq + i;
      for (int64_t j = 0; j < C; ++j) {
        qkv[r * 3 * C + j] = q[i * C + j];
        qkv[r * 3 * C + C + j] = hk[b][t * C + j];
        qkv[r * 3 * C + 2 * C + j] = hv[b][t * C + j];
      }
      row_slot[r] = slot[b], row_pos[r] = static_cast<int32_t>(t);
    }
  }
  cuda::stream_synchronize(nullptr);
  auto dqkv = upload(qkv);
  auto drs = upload(row_slot), drp = upload(row_pos), dlen = upload(len), dslot = upload(slot);
  cuda::kv_cache_write(kc.get(), vc.get(), H * cap * hd, cap * hd, dqkv.get(), 3 * C, C, 2 * C, drs.get(), drp.get(),
                       B * Tq, H, hd, nullptr);
  DeviceBuffer<float> out(B * Tq * C), lse(B * H * Tq);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  cuda::attention_decode(AttnDims{B, H, Tq, maxlen, hd}, AttnViewOut{out.get(), Tq * C, C, hd}, lse.get(),
                         AttnView{dqkv.get(), Tq * 3 * C, 3 * C, hd}, AttnView{kc.get(), H * cap * hd, hd, cap * hd},
                         AttnView{vc.get(), H * cap * hd, hd, cap * hd}, dlen.get(), dslot.get(), scale, nullptr);
  std::vector<float> want(B * Tq * C), want_lse(B * H * Tq), scores(H * maxlen);
  for (int64_t b = 0; b < B; ++b)
    attention_decode(H, Tq, len[b], hd, AttnViewOut{want.data() + b * Tq * C, 0, C, hd}, want_lse.data() + b * H * Tq,
                     AttnView{qkv.data() + b * Tq * 3 * C, 0, 3 * C, hd}, AttnView{hk[b].data(), 0, C, hd},
                     AttnView{hv[b].data(), 0, C, hd}, scale, scores.data());
  c.expect("attention_decode (kv_slot)", shape, "out", compare(download(out), want), 1e-5);
  c.expect("attention_decode (kv_slot)", shape, "lse", compare(download(lse), want_lse, 1.0), 1e-5,
           Metric::Elementwise);
  // The cache rows kv_cache_write put there are the history rows, exactly.
  std::vector<float> kall = download(kc);
  double worst = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = len[b] - Tq; t < len[b]; ++t)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t e = 0; e < hd; ++e)
          worst = std::max(worst, std::fabs(double(kall[((slot[b] * H + h) * cap + t) * hd + e]) -
                                            double(hk[b][t * C + h * hd + e])));
  c.expect_true("kv_cache_write", shape, fmt("K rows copied exactly (max diff %g)", worst), worst == 0.0);
}

void check_copy_2d(Checker& c) {
  Rng rng(5);
  const int64_t rows = 13, sp = 40, dp = 64, w = 33;
  const std::vector<float> src = rng.normal(rows * sp, 1.0f);
  auto dsrc = upload(src);
  DeviceBuffer<float> dst(rows * dp);
  cuda::memset_zero(dst.get(), dst.size() * sizeof(float), nullptr);
  cuda::copy_device_2d(dst.get(), dp * sizeof(float), dsrc.get(), sp * sizeof(float), w * sizeof(float), rows, nullptr);
  std::vector<float> want(rows * dp, 0.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < w; ++i) want[r * dp + i] = src[r * sp + i];
  c.expect("copy_device_2d", "13 rows 33 of 40 -> 64", "dst", compare(download(dst), want), 0.0, Metric::Absolute);
}

}  // namespace

void check_rowops(Checker& c) {
  for (auto [N, n] : {std::pair<int64_t, int64_t>{1, 1}, {37, 129}, {300, 768}, {1000, 3}}) check_rows(c, N, n);
  for (auto [t, N, d] : {std::tuple<int64_t, int64_t, int64_t>{5, 9, 3}, {50, 301, 64}, {300, 1001, 768}})
    check_gathers(c, t, N, d);
  for (auto [H, hd, Tq] : {std::tuple<int64_t, int64_t, int64_t>{2, 16, 1}, {4, 12, 3}, {12, 64, 1}})
    check_decode_slots(c, H, hd, Tq);
  check_copy_2d(c);
}

}  // namespace medgym::check
