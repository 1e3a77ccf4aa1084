// Counter-based random numbers (SPEC §7). No state is carried between draws: a draw is a pure
// function of (key, counter), so batch composition and finish order never change a sequence's samples.
//   mix(x)            = splitmix64 finalizer of x + 0x9E3779B97F4A7C15
//   stream_key(s,t,p,i) = mix(mix(mix(mix(s) ^ t) ^ p) ^ i)   (seed, step, prompt index, sample index)
//   uniform(key, n)   = (mix(key ^ mix(n)) >> 11) * 2^-53   in [0, 1),  n = the sequence's token index
#pragma once
#include <cmath>
#include <cstdint>

namespace medgym::model {

inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

inline uint64_t stream_key(uint64_t seed, uint64_t step, uint64_t prompt, uint64_t sample) {
  return mix64(mix64(mix64(mix64(seed) ^ step) ^ prompt) ^ sample);
}

inline double uniform01(uint64_t key, uint64_t counter) {
  return static_cast<double>(mix64(key ^ mix64(counter)) >> 11) * (1.0 / 9007199254740992.0);
}

// Standard normal from two uniforms of the stream (Box-Muller, cosine branch).
inline double normal01(uint64_t key, uint64_t counter) {
  double u1 = uniform01(key, 2 * counter), u2 = uniform01(key, 2 * counter + 1);
  if (u1 < 1e-300) u1 = 1e-300;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// Two independent standard normals from draws 2n and 2n+1 (both Box-Muller branches).
inline void normal_pair(uint64_t key, uint64_t n, double* z0, double* z1) {
  double u1 = uniform01(key, 2 * n), u2 = uniform01(key, 2 * n + 1);
  if (u1 < 1e-300) u1 = 1e-300;
  const double r = std::sqrt(-2.0 * std::log(u1)), a = 6.283185307179586 * u2;
  *z0 = r * std::cos(a);
  *z1 = r * std::sin(a);
}

}  // namespace medgym::model
