// Attention against the CPU twins: the GPT-2 qkv layout (forward, backward with and without
// accumulation, key masks that leave some queries with no key), general strided views with Tq < Tk
// over a head-major cache, and the batched decode step against attention_decode per sequence.
// The backward gets the CPU forward's out / lse, so its error is its own. lse is compared element by
// element relative to max(|lse|, 1); -inf (no key) must match exactly.
#include <cmath>

#include "cpu/attention.h"
#include "cpu/attention_decode.h"
#include "cuda/check/check.h"

namespace medgym::check {

namespace {

std::vector<int32_t> make_mask(Rng& rng, int64_t B, int64_t T) {
  std::vector<int32_t> m(B * T);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t lead = b % 2 ? std::min<int64_t>(T, 3) : 0;  // odd rows: the first keys masked (left padding)
    for (int64_t t = 0; t < T; ++t) m[b * T + t] = t < lead ? 0 : (rng.integer(0, 9) > 1);
  }
  return m;
}

void qkv_case(Checker& c, int64_t B, int64_t T, int64_t C, int64_t H, bool masked) {
  Rng rng(static_cast<uint64_t>(B * 1000 + T * 10 + C + H));
  const std::string shape = fmt("B=%lld T=%lld C=%lld H=%lld%s", (long long)B, (long long)T, (long long)C,
                                (long long)H, masked ? " mask" : "");
  std::vector<float> qkv = rng.normal(B * T * 3 * C, 1.0f), dout = rng.normal(B * T * C, 1.0f);
  const std::vector<int32_t> mask = masked ? make_mask(rng, B, T) : std::vector<int32_t>();
  const int32_t* m = masked ? mask.data() : nullptr;
  std::vector<float> out(B * T * C), lse(B * H * T);
  attention_forward_qkv(out.data(), lse.data(), qkv.data(), m, B, T, C, H);
  auto dqkv_in = upload(qkv);
  auto dmask = upload(masked ? mask : std::vector<int32_t>(1));
  auto dout_g = upload(std::vector<float>(B * T * C)), dlse = upload(std::vector<float>(B * H * T));
  const int32_t* gm = masked ? dmask.get() : nullptr;
  cuda::attention_forward_qkv(dout_g.get(), dlse.get(), dqkv_in.get(), gm, B, T, C, H, nullptr);
  c.expect("attention_forward", shape, "out", compare(download(dout_g), out), 1e-5);
  c.expect("attention_forward", shape, "lse", compare(download(dlse), lse, 1.0), 1e-5, Metric::Elementwise);
  for (bool acc : {false, true}) {
    std::vector<float> d0 = rng.normal(B * T * 3 * C, 1.0f), dq = d0;
    attention_backward_qkv(dq.data(), dout.data(), qkv.data(), out.data(), lse.data(), m, B, T, C, H, acc);
    auto gd = upload(d0), gdo = upload(dout), gout = upload(out), glse = upload(lse);
    cuda::attention_backward_qkv(gd.get(), gdo.get(), dqkv_in.get(), gout.get(), glse.get(), gm, B, T, C, H, acc,
                                 nullptr);
    c.expect("attention_backward", shape + (acc ? " acc" : ""), "dqkv", compare(download(gd), dq), 2e-5);
  }
}

// q, out: [B, Tq, H, hd]; k, v and their gradients: a head-major cache [B, H, S, hd] with S > Tk.
void view_case(Checker& c, int64_t B, int64_t H, int64_t Tq, int64_t Tk, int64_t hd) {
  Rng rng(static_cast<uint64_t>(B + H * 10 + Tq * 100 + Tk * 1000 + hd));
  const std::string shape = fmt("B=%lld H=%lld Tq=%lld Tk=%lld hd=%lld", (long long)B, (long long)H, (long long)Tq,
                                (long long)Tk, (long long)hd);
  const int64_t S = Tk + 8;
  const AttnDims dims{B, H, Tq, Tk, hd};
  const int64_t qsb = Tq * H * hd, qst = H * hd, qsh = hd, ksb = H * S * hd, kst = hd, ksh = S * hd;
  std::vector<float> q = rng.normal(B * Tq * H * hd, 1.0f), k = rng.normal(B * H * S * hd, 1.0f),
                     v = rng.normal(B * H * S * hd, 1.0f), dout = rng.normal(B * Tq * H * hd, 1.0f);
  const std::vector<int32_t> mask = make_mask(rng, B, Tk);
  const float scale = 1.0f / std::sqrt(float(hd));
  std::vector<float> out(q.size()), lse(B * H * Tq), dq(q.size()), dk(k.size(), 0.0f), dv(v.size(), 0.0f);
  attention_forward(dims, {out.data(), qsb, qst, qsh}, lse.data(), {q.data(), qsb, qst, qsh}, {k.data(), ksb, kst, ksh},
                    {v.data(), ksb, kst, ksh}, mask.data(), scale);
  attention_backward(dims, {dq.data(), qsb, qst, qsh}, {dk.data(), ksb, kst, ksh}, {dv.data(), ksb, kst, ksh},
                     {dout.data(), qsb, qst, qsh}, {out.data(), qsb, qst, qsh}, lse.data(), {q.data(), qsb, qst, qsh},
                     {k.data(), ksb, kst, ksh}, {v.data(), ksb, kst, ksh}, mask.data(), scale, false);
  auto gq = upload(q), gk = upload(k), gv = upload(v), gdo = upload(dout);
  auto gmask = upload(mask);
  auto gout = upload(std::vector<float>(out.size())), glse = upload(std::vector<float>(lse.size()));
  auto gdq = upload(std::vector<float>(q.size())), gdk = upload(std::vector<float>(k.size(), 0.0f)),
       gdv = upload(std::vector<float>(v.size(), 0.0f));
  cuda::attention_forward(dims, {gout.get(), qsb, qst, qsh}, glse.get(), {gq.get(), qsb, qst, qsh},
                          {gk.get(), ksb, kst, ksh}, {gv.get(), ksb, kst, ksh}, gmask.get(), scale, nullptr);
  c.expect("attention_forward", shape, "out", compare(download(gout), out), 1e-5);
  c.expect("attention_forward", shape, "lse", compare(download(glse), lse, 1.0), 1e-5, Metric::Elementwise);
  auto gout_cpu = upload(out), glse_cpu = upload(lse);
  cuda::attention_backward(dims, {gdq.get(), qsb, qst, qsh}, {gdk.get(), ksb, kst, ksh}, {gdv.get(), ksb, kst, ksh},
                           {gdo.get(), qsb, qst, qsh}, {gout_cpu.get(), qsb, qst, qsh}, glse_cpu.get(),
                           {gq.get(), qsb, qst, qsh}, {gk.get(), ksb, kst, ksh}, {gv.get(), ksb, kst, ksh}, gmask.get(),
                           scale, false, nullptr);
  c.expect("attention_backward", shape, "dq", compare(download(gdq), dq), 2e-5);
  c.expect("attention_backward", shape, "dk", compare(download(gdk), dk), 2e-5);
  c.expect("attention_backward", shape, "dv", compare(download(gdv), dv), 2e-5);
}

void decode_case(Checker& c, int64_t Tq, int64_t hd) {
  const int64_t B = 3, H = 2, S = 700;
  const int64_t lens[3] = {Tq, 257, S};
  Rng rng(static_cast<uint64_t>(Tq * 100 + hd));
  const std::string shape = fmt("B=3 H=2 Tq=%lld hd=%lld len=%lld/257/700", (long long)Tq, (long long)hd, (long long)Tq);
  const int64_t qsb = Tq * H * hd, qst = H * hd, qsh = hd, ksb = H * S * hd, kst = hd, ksh = S * hd;
  std::vector<float> q = rng.normal(B * Tq * H * hd, 1.0f), k = rng.normal(B * H * S * hd, 1.0f),
                     v = rng.normal(B * H * S * hd, 1.0f);
  const float scale = 1.0f / std::sqrt(float(hd));
  std::vector<float> out(q.size()), lse(B * H * Tq), scores(H * S);
  for (int64_t b = 0; b < B; ++b)
    attention_decode(H, Tq, lens[b], hd, {out.data() + b * qsb, 0, qst, qsh}, lse.data() + b * H * Tq,
                     {q.data() + b * qsb, 0, qst, qsh}, {k.data() + b * ksb, 0, kst, ksh},
                     {v.data() + b * ksb, 0, kst, ksh}, scale, scores.data());
  std::vector<int32_t> kv_len(lens, lens + 3);
  auto gq = upload(q), gk = upload(k), gv = upload(v);
  auto glen = upload(kv_len);
  auto gout = upload(std::vector<float>(out.size())), glse = upload(std::vector<float>(lse.size()));
  cuda::attention_decode({B, H, Tq, S, hd}, {gout.get(), qsb, qst, qsh}, glse.get(), {gq.get(), qsb, qst, qsh},
                         {gk.get(), ksb, kst, ksh}, {gv.get(), ksb, kst, ksh}, glen.get(), scale, nullptr);
  c.expect("attention_decode", shape, "out", compare(download(gout), out), 1e-5);
  c.expect("attention_decode", shape, "lse", compare(download(glse), lse, 1.0), 1e-5, Metric::Elementwise);
}

}  // namespace

void check_attention(Checker& c) {
  const int64_t qkv[][5] = {{1, 1, 4, 1, 0},   {1, 1, 6, 2, 1},    {2, 5, 12, 3, 1},   {3, 33, 24, 2, 1},
                            {2, 70, 20, 4, 1}, {1, 40, 48, 3, 0},  {2, 65, 128, 2, 1}, {2, 300, 256, 4, 1},
                            {1, 50, 320, 2, 0}, {2, 129, 768, 6, 1}};
  for (const auto& s : qkv) qkv_case(c, s[0], s[1], s[2], s[3], s[4] != 0);
  view_case(c, 2, 3, 5, 40, 24);
  view_case(c, 1, 2, 70, 133, 64);
  view_case(c, 2, 1, 1, 97, 130);
  for (int64_t Tq : {1, 3})
    for (int64_t hd : {16, 64, 100}) decode_case(c, Tq, hd);
}

}  // namespace medgym::check
