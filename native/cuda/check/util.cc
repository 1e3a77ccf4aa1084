// Data, comparison and reporting helpers of medgym_cuda_check (no CUDA runtime calls: timing and device
// peaks are in timing.cc, so that the CPU emulation test of native/tests/cuda_emulation can link this file).
#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <map>

#include "cuda/check/check.h"

namespace medgym::check {

std::string fmt(const char* f, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, f);
  vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

std::vector<float> Rng::uniform(size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> x(n);
  for (auto& v : x) v = u(g);
  return x;
}
std::vector<float> Rng::normal(size_t n, float sd) {
  std::normal_distribution<float> u(0.0f, sd);
  std::vector<float> x(n);
  for (auto& v : x) v = u(g);
  return x;
}
int64_t Rng::integer(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(g); }

std::vector<Bf16> to_bf16(const std::vector<float>& x) {
  std::vector<Bf16> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = cuda::bf16_from_float(x[i]);
  return y;
}
std::vector<float> from_bf16(const std::vector<Bf16>& x) {
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = cuda::float_from_bf16(x[i]);
  return y;
}
std::vector<float> round_bf16(const std::vector<float>& x) { return from_bf16(to_bf16(x)); }

Diff compare(const std::vector<float>& got, const std::vector<float>& want, double floor) {
  Diff d;
  if (got.size() != want.size()) {
    d.nonfinite_mismatch = 1;
    return d;
  }
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], w = want[i];
    if (!std::isfinite(w) || !std::isfinite(g)) {
      const bool same = (std::isnan(w) && std::isnan(g)) || (g == w);
      if (!same) {
        d.nonfinite_mismatch += 1;
        if (d.worst < 0) d.worst = static_cast<int64_t>(i);
      }
      continue;
    }
    const double e = std::fabs(g - w);
    d.max_ref = std::max(d.max_ref, std::fabs(w));
    if (e > d.max_abs) d.max_abs = e, d.worst = static_cast<int64_t>(i);
    d.elem_rel = std::max(d.elem_rel, e / std::max(std::fabs(w), floor));
  }
  d.normwise = d.max_abs / std::max(d.max_ref, 1e-30);
  return d;
}

Diff compare_scalar(double got, double want) {
  Diff d;
  if (!std::isfinite(want) || !std::isfinite(got)) {
    d.nonfinite_mismatch = ((std::isnan(want) && std::isnan(got)) || got == want) ? 0 : 1;
    return d;
  }
  d.max_abs = std::fabs(got - want);
  d.max_ref = std::fabs(want);
  d.normwise = d.elem_rel = d.max_abs / std::max(d.max_ref, 1e-30);
  return d;
}

Diff relative_to(Diff d, double scale) {
  d.normwise = d.max_abs / std::max({d.max_ref, scale, 1e-30});
  return d;
}

bool Checker::expect(const std::string& kernel, const std::string& shape, const std::string& output, const Diff& d,
                     double bound, Metric m) {
  const double err = m == Metric::Normwise ? d.normwise : m == Metric::Absolute ? d.max_abs : d.elem_rel;
  const bool pass = d.nonfinite_mismatch == 0 && err <= bound;
  const char* label = m == Metric::Normwise ? "normwise" : m == Metric::Absolute ? "absolute" : "elementwise";
  results.push_back({kernel, shape, output, label, err, bound, pass});
  if (!pass) {
    ++failures;
    std::printf("FAIL %-34s %-28s %-10s err %.3e > bound %.1e (max abs %.3e, max |ref| %.3e, non-finite mismatches %lld, worst index %lld)\n",
                kernel.c_str(), shape.c_str(), output.c_str(), err, bound, d.max_abs, d.max_ref,
                (long long)d.nonfinite_mismatch, (long long)d.worst);
  }
  return pass;
}

bool Checker::expect_true(const std::string& kernel, const std::string& shape, const std::string& what, bool ok) {
  results.push_back({kernel, shape, what, "exact", ok ? 0.0 : 1.0, 0.0, ok});
  if (!ok) {
    ++failures;
    std::printf("FAIL %-34s %-28s %s\n", kernel.c_str(), shape.c_str(), what.c_str());
  }
  return ok;
}

void Checker::error(const std::string& kernel, const std::string& what) {
  results.push_back({kernel, "-", "error: " + what, "exception", 1.0, 0.0, false});
  ++failures;
  std::printf("FAIL %-34s threw: %s\n", kernel.c_str(), what.c_str());
}

void Checker::print_summary() const {
  // Worst error per (kernel, output) over all shapes.
  struct Agg {
    double err = 0, bound = 0;
    int n = 0, fail = 0;
    std::string metric;
  };
  std::map<std::pair<std::string, std::string>, Agg> agg;
  for (const Result& r : results) {
    Agg& a = agg[{r.kernel, r.output}];
    a.n += 1, a.fail += !r.pass;
    if (a.n == 1 || r.err / std::max(r.bound, 1e-300) > a.err / std::max(a.bound, 1e-300)) a.err = r.err, a.bound = r.bound;
    a.metric = r.metric;
  }
  std::printf("\n%-36s %-16s %5s %11s %9s %-11s %s\n", "kernel", "output", "cases", "worst err", "bound", "metric",
              "result");
  for (const auto& [key, a] : agg)
    std::printf("%-36s %-16s %5d %11.3e %9.1e %-11s %s\n", key.first.c_str(), key.second.c_str(), a.n, a.err, a.bound,
                a.metric.c_str(), a.fail ? "FAIL" : "ok");
}

}  // namespace medgym::check
