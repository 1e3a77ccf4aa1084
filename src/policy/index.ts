// Policies behind one interface. Today: the native SPEC §1 model.
export { NativePolicy } from './native_policy';
export { DEFAULT_BANNED_TOKENS, DEFAULT_STOP_TOKENS } from './session';
export { DEFAULT_MAX_PARAMS } from './checkpoint';
export { POLICY_PRESETS, validateConfig } from './presets';
export type * from './types';
export { describeDevice, probeCuda, resolveDevice } from './device';
