#include "cpu/cpu_features.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace medgym {

namespace {

CpuFeatures detect() {
  CpuFeatures f;
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
  f.avx512bf16 = __builtin_cpu_supports("avx512bf16");
  f.avx512vnni = __builtin_cpu_supports("avx512vnni");
#endif
#endif
  return f;
}

SimdLevel best_level(const CpuFeatures& f) {
  if (f.avx512f && f.avx512bw && f.avx512vl && f.fma) return SimdLevel::Avx512;
  if (f.avx2 && f.fma) return SimdLevel::Avx2Fma;
  return SimdLevel::Portable;
}

SimdLevel level_from_env(SimdLevel best) {
  const char* s = std::getenv("MEDGYM_SIMD");
  if (!s) return best;
  SimdLevel want = best;
  if (!std::strcmp(s, "portable")) want = SimdLevel::Portable;
  else if (!std::strcmp(s, "avx2")) want = SimdLevel::Avx2Fma;
  else if (!std::strcmp(s, "avx512")) want = SimdLevel::Avx512;
  return want < best ? want : best;
}

std::atomic<int>& current_level() {
  static std::atomic<int> level{static_cast<int>(level_from_env(best_level(cpu_features())))};
  return level;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

SimdLevel simd_level() { return static_cast<SimdLevel>(current_level().load(std::memory_order_relaxed)); }

SimdLevel set_simd_level(SimdLevel requested) {
  SimdLevel best = best_level(cpu_features());
  SimdLevel level = requested < best ? requested : best;
  current_level().store(static_cast<int>(level));
  return level;
}

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::Avx512: return "avx512";
    case SimdLevel::Avx2Fma: return "avx2+fma";
    default: return "portable";
  }
}

}  // namespace medgym
