// Module entry: every binding file registers itself (MEDGYM_REGISTER_BINDINGS); this file only runs
// them and exposes runtime information for `medgym doctor`.
#include <napi.h>

#include <thread>

#include "addon/args.h"
#include "cpu/cpu_features.h"
#include "cpu/threadpool.h"
#ifdef MEDGYM_WITH_CUDA
#include "cuda/device.h"
#ifdef MEDGYM_WITH_CUDA
#include "cuda/kernels.h"
#endif
#endif

#ifndef MEDGYM_VERSION
#define MEDGYM_VERSION "0.1.0"
#endif

namespace medgym::addon {
namespace {

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const CpuFeatures& f = cpu_features();
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", MEDGYM_VERSION);
  o.Set("napiVersion", NAPI_VERSION);
  o.Set("simd", simd_level_name(simd_level()));
  Napi::Object feats = Napi::Object::New(env);
  feats.Set("avx2", f.avx2);
  feats.Set("fma", f.fma);
  feats.Set("avx512f", f.avx512f);
  feats.Set("avx512bw", f.avx512bw);
  feats.Set("avx512vl", f.avx512vl);
  feats.Set("avx512bf16", f.avx512bf16);
  feats.Set("avx512vnni", f.avx512vnni);
  o.Set("cpuFeatures", feats);
  o.Set("threads", num_threads());
  o.Set("hardwareThreads", static_cast<double>(std::thread::hardware_concurrency()));
#ifdef MEDGYM_WITH_CUDA
  o.Set("cudaCompiled", true);
  o.Set("cudaRuntimeVersion", cuda::runtime_version());
  o.Set("cudaGemm", cuda::gemm_backend());
  std::string why;
  auto devices = cuda::list_devices(&why);
  Napi::Array list = Napi::Array::New(env, devices.size());
  for (size_t i = 0; i < devices.size(); ++i) {
    Napi::Object d = Napi::Object::New(env);
    d.Set("name", devices[i].name);
    d.Set("computeCapability", std::to_string(devices[i].major) + "." + std::to_string(devices[i].minor));
    d.Set("totalMemory", static_cast<double>(devices[i].total_memory));
    d.Set("multiprocessors", devices[i].multiprocessors);
    list.Set(static_cast<uint32_t>(i), d);
  }
  o.Set("cudaDevices", list);
  if (devices.empty()) o.Set("cudaUnavailableReason", why);
#else
  o.Set("cudaCompiled", false);
  o.Set("cudaDevices", Napi::Array::New(env, 0));
#endif
#if defined(__clang__)
  o.Set("compiler", "clang " __clang_version__);
#elif defined(__GNUC__)
  o.Set("compiler", "gcc " __VERSION__);
#else
  o.Set("compiler", "unknown");
#endif
  return o;
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  Args a(info, "setNumThreads");
  int64_t n = a.integer("threads", 0, 1024);
  set_num_threads(static_cast<int>(n));
  return Napi::Number::New(info.Env(), num_threads());
}

Napi::Value SetSimdLevel(const Napi::CallbackInfo& info) {
  Args a(info, "setSimdLevel");
  int level = a.choice("level", {"portable", "avx2", "avx512"});
  return Napi::String::New(info.Env(), simd_level_name(set_simd_level(static_cast<SimdLevel>(level))));
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("info", Napi::Function::New(env, Info, "info"));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads, "setNumThreads"));
  exports.Set("setSimdLevel", Napi::Function::New(env, SetSimdLevel, "setSimdLevel"));
  run_inits(env, exports);
  return exports;
}

}  // namespace medgym::addon

static Napi::Object InitMedgym(Napi::Env env, Napi::Object exports) {
  return medgym::addon::Init(env, exports);
}

NODE_API_MODULE(medgym, InitMedgym)
