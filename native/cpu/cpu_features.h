// Run-time CPU feature detection. Kernels pick their SIMD path from this, never from build flags,
// so one binary runs on any x86-64 (and builds, with the portable path only, elsewhere).
#pragma once
#include <string>

namespace medgym {

enum class SimdLevel { Portable = 0, Avx2Fma = 1, Avx512 = 2 };

struct CpuFeatures {
  bool avx2 = false, fma = false, avx512f = false, avx512bw = false, avx512vl = false,
       avx512bf16 = false, avx512vnni = false;
};

const CpuFeatures& cpu_features();
// The level kernels use: the best the CPU has, capped by set_simd_level / MEDGYM_SIMD
// ("portable", "avx2", "avx512") so that every path can be tested and benchmarked on one machine.
SimdLevel simd_level();
// Caps the level (clamped to what the CPU supports); returns the level now in force.
SimdLevel set_simd_level(SimdLevel requested);
const char* simd_level_name(SimdLevel level);

}  // namespace medgym
