// Policies behind one interface. Today: the native SPEC §1 model.
export { NativePolicy, DEFAULT_BANNED_TOKENS, DEFAULT_STOP_TOKENS } from './native_policy';
export { POLICY_PRESETS, validateConfig } from './presets';
export type * from './types';
export { describeDevice, probeCuda, resolveDevice } from './device';
