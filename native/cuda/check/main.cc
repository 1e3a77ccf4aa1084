// medgym_cuda_check: runs every CUDA kernel against its CPU twin on random shapes (--check, the
// default) and/or times them with napkin math against the device's peaks (--bench), printing tables
// and writing JSON (--json PATH). Exit codes: 0 all checks passed, 1 a check failed, 2 bad usage,
// 77 no usable GPU (nothing was run: ctest reports it as skipped, never as passed).
//   medgym_cuda_check [--check] [--bench] [--json PATH] [--only SUBSTRING]
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "cpu/threadpool.h"
#include "cuda/check/check.h"

using namespace medgym;
using namespace medgym::check;

namespace {

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\', o += c;
    else if (static_cast<unsigned char>(c) < 0x20) o += fmt("\\u%04x", c);
    else o += c;
  }
  return o;
}
std::string num(double x) { return std::isfinite(x) ? fmt("%.6g", x) : "null"; }

bool write_json(const std::string& path, const std::string& status, const std::string& reason, const Peaks* p,
                const Checker* c, const std::vector<BenchResult>* bench) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f) return false;
  std::fprintf(f, "{\n  \"tool\": \"medgym_cuda_check\",\n  \"status\": \"%s\",\n  \"reason\": \"%s\"", status.c_str(),
               json_escape(reason).c_str());
  if (p)
    std::fprintf(f,
                 ",\n  \"device\": {\"name\": \"%s\", \"cc\": \"%d.%d\", \"sms\": %d, \"sm_clock_ghz\": %s, "
                 "\"mem_clock_ghz\": %s, \"bus_bits\": %d, \"hbm_gbs\": %s, \"fp32_tflops\": %s, \"bf16_tflops\": %s, "
                 "\"cuda_runtime\": %d}",
                 json_escape(p->name).c_str(), p->major, p->minor, p->sms, num(p->sm_clock_ghz).c_str(),
                 num(p->mem_clock_ghz).c_str(), p->bus_bits, num(p->hbm_gbs).c_str(), num(p->fp32_tflops).c_str(),
                 num(p->bf16_tflops).c_str(), CUDART_VERSION);
  if (c) {
    std::fprintf(f, ",\n  \"failures\": %d,\n  \"checks\": [", c->failures);
    for (size_t i = 0; i < c->results.size(); ++i) {
      const Result& r = c->results[i];
      std::fprintf(f, "%s\n    {\"kernel\": \"%s\", \"shape\": \"%s\", \"output\": \"%s\", \"metric\": \"%s\", "
                      "\"err\": %s, \"bound\": %s, \"pass\": %s}",
                   i ? "," : "", json_escape(r.kernel).c_str(), json_escape(r.shape).c_str(),
                   json_escape(r.output).c_str(), r.metric.c_str(), num(r.err).c_str(), num(r.bound).c_str(),
                   r.pass ? "true" : "false");
    }
    std::fprintf(f, "\n  ]");
  }
  if (bench) {
    std::fprintf(f, ",\n  \"bench\": [");
    for (size_t i = 0; i < bench->size(); ++i) {
      const BenchResult& b = (*bench)[i];
      std::fprintf(f, "%s\n    {\"name\": \"%s\", \"shape\": \"%s\", \"ms\": %s, \"flops\": %s, \"bytes\": %s, "
                      "\"tflops\": %s, \"gbs\": %s, \"frac_of_peak\": %s, \"roof\": \"%s\", \"tokens_per_s\": %s}",
                   i ? "," : "", json_escape(b.name).c_str(), json_escape(b.shape).c_str(), num(b.ms).c_str(),
                   num(b.flops).c_str(), num(b.bytes).c_str(), num(b.tflops).c_str(), num(b.gbs).c_str(),
                   num(b.frac).c_str(), b.roof.c_str(), num(b.tokens_per_s).c_str());
    }
    std::fprintf(f, "\n  ]");
  }
  std::fprintf(f, "\n}\n");
  std::fclose(f);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  bool do_check = false, do_bench = false;
  std::string json, only;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--check")) do_check = true;
    else if (!std::strcmp(argv[i], "--bench")) do_bench = true;
    else if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
    else if (!std::strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--check] [--bench] [--json PATH] [--only SUBSTRING]\n", argv[0]);
      return 2;
    }
  }
  if (!do_check && !do_bench) do_check = true;

  // No GPU (or no driver): say why and report "not run", never "passed".
  std::string why;
  bool usable = cuda::available(&why);
  if (usable) {
    try {
      cuda::DeviceBuffer<float> probe(4);  // a context can be created
    } catch (const std::exception& e) {
      usable = false, why = e.what();
    }
  }
  if (!usable) {
    std::printf("CUDA checks not run: %s\n", why.c_str());
    if (!json.empty()) write_json(json, "not run", why, nullptr, nullptr, nullptr);
    return 77;
  }

  {  // Keep freed scratch in the stream-ordered pool (the kernels' cudaMallocAsync) instead of
     // returning it to the driver at every synchronization: benchmark loops then reuse it.
    int dev = 0;
    cudaMemPool_t pool;
    if (cudaGetDevice(&dev) == cudaSuccess && cudaDeviceGetDefaultMemPool(&pool, dev) == cudaSuccess) {
      uint64_t keep = UINT64_MAX;
      cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
    }
  }
  const Peaks p = device_peaks();
  std::printf("device: %s (sm_%d%d), %d SMs @ %.2f GHz, HBM %.0f GB/s (%d-bit @ %.2f GHz), peaks: fp32 %.1f TFLOP/s, "
              "bf16 dense %.1f TFLOP/s%s; GEMM: %s; CPU twin threads: %d\n",
              p.name.c_str(), p.major, p.minor, p.sms, p.sm_clock_ghz, p.hbm_gbs, p.bus_bits, p.mem_clock_ghz,
              p.fp32_tflops, p.bf16_tflops, p.bf16_per_clk ? "" : " (unknown arch)", cuda::gemm_backend(), num_threads());

  Checker c;
  if (do_check) {
    const struct {
      const char* name;
      void (*fn)(Checker&);
    } suites[] = {{"gemm", check_gemm}, {"layers", check_layers}, {"attention", check_attention},
                  {"logprob", check_logprob}, {"optim", check_optim}, {"rowops", check_rowops},
                  {"policy", check_policy}};
    for (const auto& s : suites) {
      if (!only.empty() && std::string(s.name).find(only) == std::string::npos) continue;
      std::printf("checking %s ...\n", s.name);
      std::fflush(stdout);
      try {
        s.fn(c);
      } catch (const std::exception& e) {
        c.error(s.name, e.what());
      }
    }
    c.print_summary();
    std::printf("\n%zu checks, %d failed\n", c.results.size(), c.failures);
  }
  std::vector<BenchResult> bench;
  if (do_bench) {
    try {
      bench = run_bench(p, only);
    } catch (const std::exception& e) {
      c.error("bench", e.what());
    }
    try {
      for (const BenchResult& r : run_policy_bench(p, only)) bench.push_back(r);
    } catch (const std::exception& e) {
      c.error("policy bench", e.what());
    }
  }
  if (!json.empty() && !write_json(json, c.failures ? "failed" : "passed", "", &p, do_check ? &c : nullptr,
                                   do_bench ? &bench : nullptr))
    std::fprintf(stderr, "could not write %s\n", json.c_str());
  return c.failures ? 1 : 0;
}
