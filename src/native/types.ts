// The raw shape of the addon's core functions. Each kernel group declares its own raw functions in
// its wrapper file (src/native/<group>.ts) and reaches them through `nativeFunctions<T>()`.

export interface NativeInfo {
  /** medgym version the addon was built from. */
  version: string;
  /** N-API version the addon targets. */
  napiVersion: number;
  /** SIMD path in use: "avx512", "avx2+fma" or "portable". */
  simd: string;
  /** CPU features detected at run time (avx2, fma, avx512f, ...). */
  cpuFeatures: Record<string, boolean>;
  /** Kernel thread pool size now (setNumThreads, MEDGYM_NUM_THREADS). */
  threads: number;
  /** Hardware threads of this machine. */
  hardwareThreads: number;
  /** CUDA sources compiled in (CMake found nvcc at build time). */
  cudaCompiled: boolean;
  /** CUDA runtime the addon was built against, e.g. 13000 (when compiled). */
  cudaRuntimeVersion?: number;
  /** Which GEMMs the CUDA kernels run: 'cuBLAS' or the built-in ones (when compiled). */
  cudaGemm?: string;
  /** Devices the CUDA runtime sees now (empty without a driver or GPU). */
  cudaDevices: { name: string; computeCapability: string; totalMemory: number; multiprocessors: number }[];
  /** Why no device is usable, as the CUDA runtime says it. */
  cudaUnavailableReason?: string;
  /** Compiler that built the addon, e.g. "gcc 12.2.0". */
  compiler: string;
}

export interface NativeAddon {
  info(): NativeInfo;
  setNumThreads(opts: { threads: number }): number;
  setSimdLevel(opts: { level: SimdLevel }): string;
}

export type SimdLevel = 'portable' | 'avx2' | 'avx512';
