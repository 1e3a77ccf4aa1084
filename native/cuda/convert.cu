// bf16 <-> fp32 conversions (host and device).
#include <cstring>

#include "cuda/common.cuh"

namespace medgym::cuda {

Bf16 bf16_from_float(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return Bf16{static_cast<uint16_t>((u >> 16) | 0x40u)};
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
  return Bf16{static_cast<uint16_t>(u >> 16)};
}

float float_from_bf16(Bf16 x) {
  const uint32_t u = static_cast<uint32_t>(x.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

namespace {

__global__ void f32_to_bf16_kernel(__nv_bfloat16* out, const float* in, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = __float2bfloat16_rn(in[i]);
}
__global__ void bf16_to_f32_kernel(float* out, const __nv_bfloat16* in, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = __bfloat162float(in[i]);
}

}  // namespace

void convert_f32_to_bf16(Bf16* out, const float* in, int64_t n, Stream s) {
  if (n <= 0) return;
  f32_to_bf16_kernel<<<grid_for(n, 256, 8 * 1024), 256, 0, to_stream(s)>>>(to_bf(out), in, n);
  check_launch("convert_f32_to_bf16 kernel");
}
void convert_bf16_to_f32(float* out, const Bf16* in, int64_t n, Stream s) {
  if (n <= 0) return;
  bf16_to_f32_kernel<<<grid_for(n, 256, 8 * 1024), 256, 0, to_stream(s)>>>(out, to_bf(in), n);
  check_launch("convert_bf16_to_f32 kernel");
}

}  // namespace medgym::cuda
