// medgym's public API.
export * as kernels from './native';
export { nativeInfo, setNumThreads, setSimdLevel } from './native';
