// The typed TypeScript face of the native kernels. One file per kernel group.
export { loadNative, addonCandidates, NativeAddonNotFoundError } from './loader';
export { nativeInfo, setNumThreads, setSimdLevel } from './runtime';
export type { NativeInfo, SimdLevel } from './types';
export * from './gelu';
export * from './logprob';
export * from './grpo';
export * from './cross_entropy';
export * from './layernorm';
export * from './softmax';
export * from './attention';
export * from './adamw';
export * from './grad_clip';
export * from './fused_linear_logprob';
export * from './gemm';
export * from './gemm_bf16';
// The raw N-API faces of the native policy and Qwen engine (./policy, ./qwen: handles, Raw* shapes,
// nativePolicyFunctions) stay internal: users go through NativePolicy and QwenVLModel, which validate
// at the boundary. Only the dtype names that QwenLoadOptions uses are public.
export type { QwenDtype, QwenDecodeMath } from './qwen';
export * from './attention_decode';
