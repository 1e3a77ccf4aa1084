// Runtime controls of the native backend: thread count and SIMD level.
import { loadNative } from './loader';
import type { NativeAddon, NativeInfo, SimdLevel } from './types';

/** The addon's own functions of one kernel group, typed by that group's wrapper file. */
export function nativeFunctions<T>(): T & NativeAddon {
  return loadNative() as T & NativeAddon;
}

export function nativeInfo(): NativeInfo {
  return loadNative().info();
}

/** Sets the kernel thread pool size (0 restores the default: MEDGYM_NUM_THREADS or all cores). */
export function setNumThreads(threads: number): number {
  return loadNative().setNumThreads({ threads });
}

/**
 * Caps the SIMD path kernels use ("portable", "avx2", "avx512"), clamped to what the CPU has.
 * Returns the path now in force. Also settable with MEDGYM_SIMD before loading.
 */
export function setSimdLevel(level: SimdLevel): string {
  return loadNative().setSimdLevel({ level });
}
