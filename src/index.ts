/**
 * medgym's public API (`medgym`). The subpaths `medgym/env`, `medgym/kernels`, `medgym/policy` and
 * `medgym/rewards` (src/entries/) give each group alone; everything else is internal.
 * @module
 */
export * as kernels from './entries/kernels';
export { nativeInfo, setNumThreads, setSimdLevel } from './native';
// The environment (SPEC §3–7): env, vector env, registry, checker, tools, rewards, data.
export * from './entries/env';
export * as rewards from './rewards';
export { composeRewards, batchStats, gradeAnswer } from './rewards';
export type { RewardConfig, RewardFn, EpisodeSummary, BatchEntry, BatchStats as RewardBatchStats } from './rewards';
// The native policy (SPEC §1): NativePolicy, presets, types.
export * as policy from './entries/policy';
export { NativePolicy, POLICY_PRESETS } from './policy';
export { HttpPolicy, QwenEnvPolicy } from './entries/policy';
export type { PolicyConfig, PolicyPreset, PolicySequence, GenerationSession, GenerateOptions, GenerateResult, TrainablePolicy } from './policy';

export * as train from './train';
export { runTraining, parseTrainConfig } from './train';
export type { TrainConfig } from './train';
export * as evaluation from './eval';
export { evaluate, passAtK } from './eval';
export type { EvalResult } from './eval';
export { writeReport, writeMatrix } from './report';
