// The typed TypeScript face of the native kernels. One file per kernel group.
export { loadNative, addonCandidates, NativeAddonNotFoundError } from './loader';
export { nativeInfo, setNumThreads, setSimdLevel } from './runtime';
export type { NativeInfo, SimdLevel } from './types';
export * from './gelu';
export * from './gemm';
