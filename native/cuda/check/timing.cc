// Timing and device peaks of medgym_cuda_check (the CUDA runtime parts of its helpers).
#include <cuda_runtime.h>

#include "cuda/check/check.h"

namespace medgym::check {

double time_ms(const std::function<void()>& fn, int warmup, int iters) {
  for (int i = 0; i < warmup; ++i) fn();
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  cudaEventRecord(a, nullptr);
  for (int i = 0; i < iters; ++i) fn();
  cudaEventRecord(b, nullptr);
  cudaEventSynchronize(b);
  float ms = 0;
  cudaEventElapsedTime(&ms, a, b);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw cuda::CudaError(static_cast<int>(err), "benchmark timing", cudaGetErrorString(err));
  return ms / iters;
}

// Peak numbers from the device's own clocks and unit counts. Per-SM throughputs by architecture
// (NVIDIA whitepapers): FP32 FMA lanes per SM: 64 on sm_80, 128 on sm_86/87/89/90/100/120; dense bf16
// tensor flops per clock per SM: 2048 on sm_80 (A100: 312 TFLOP/s), 512 on sm_86/87/89 (GeForce/
// workstation Ampere/Ada, fp32 accumulation, approximate), 4096 on sm_90 (H100: 989 TFLOP/s with
// wgmma; the mma.sync/WMMA instructions these kernels use reach only part of it on sm_90), 8192 on
// sm_100. The SM clock is the device's reported peak (cudaDevAttrClockRate).
Peaks device_peaks() {
  Peaks p;
  int dev = 0;
  cudaGetDevice(&dev);
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, dev);
  p.name = prop.name;
  p.major = prop.major, p.minor = prop.minor, p.sms = prop.multiProcessorCount;
  int clk = 0, mclk = 0, bus = 0;
  cudaDeviceGetAttribute(&clk, cudaDevAttrClockRate, dev);
  cudaDeviceGetAttribute(&mclk, cudaDevAttrMemoryClockRate, dev);
  cudaDeviceGetAttribute(&bus, cudaDevAttrGlobalMemoryBusWidth, dev);
  p.sm_clock_ghz = clk * 1e-6, p.mem_clock_ghz = mclk * 1e-6, p.bus_bits = bus;
  p.hbm_gbs = 2.0 * mclk * 1e3 * (bus / 8.0) * 1e-9;
  const int cc = p.major * 10 + p.minor;
  p.fp32_per_clk = 2 * (cc == 80 ? 64 : 128);
  p.bf16_per_clk = cc == 80 ? 2048 : (cc >= 86 && cc <= 89) ? 512 : cc == 90 ? 4096 : (cc == 100 || cc == 103) ? 8192 : 0;
  p.fp32_tflops = p.sms * p.sm_clock_ghz * p.fp32_per_clk * 1e-3;
  p.bf16_tflops = p.sms * p.sm_clock_ghz * p.bf16_per_clk * 1e-3;
  return p;
}

}  // namespace medgym::check
