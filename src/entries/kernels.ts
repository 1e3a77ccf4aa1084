/**
 * `medgym/kernels`: the native kernels alone (GEMM, attention, log-probs, GRPO loss, fused linear
 * log-prob, optimizers, ...) with their typed, validated faces, and the loader's controls. The addon
 * loads on the first call, never on import.
 * @module
 */
export * from '../native';
export { nativeAddonPath, platformTag, prebuiltPath } from '../native/loader';
