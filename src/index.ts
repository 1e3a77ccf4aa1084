// medgym's public API.
export * as kernels from './native';
export { nativeInfo, setNumThreads, setSimdLevel } from './native';
// The environment (SPEC §3–7): env, vector env, registry, checker, tools, rewards, data.
export * as tokenizer from './tokenizer';
export { encode, decode, SPECIAL_TOKENS, VOCAB_SIZE } from './tokenizer';
export * from './env';
export * as tools from './tools';
export { ToolSession, executeToolCall, toolJsonSchemas } from './tools';
export type { RawImage, ViewImage, Box, IntensityWindow } from './tools';
export * as rewards from './rewards';
export { composeRewards, batchStats, gradeAnswer } from './rewards';
export type { RewardConfig, RewardFn, EpisodeSummary, BatchEntry, BatchStats as RewardBatchStats } from './rewards';
export * as data from './data';
export { SynthDataset, generateItem } from './data/synth';
export type { SynthOptions } from './data/synth';
export type { Dataset, VqaItem, Split, StreamOptions } from './data/types';
export { openJsonl, openMedMnist, openVqaRad, openSlake, openPmcVqa, openOmniMedVqa, readNiftiSlice, readDicom, readImageFile, LoaderError } from './data/loaders';
// The native policy (SPEC §1): NativePolicy, presets, types.
export * as policy from './policy';
export { NativePolicy, POLICY_PRESETS } from './policy';
export type { PolicyConfig, PolicyPreset, PolicySequence, GenerationSession, GenerateOptions, GenerateResult, TrainablePolicy } from './policy';

export * as train from './train';
export { runTraining, parseTrainConfig } from './train';
export type { TrainConfig } from './train';
export * as evaluation from './eval';
export { evaluate, passAtK } from './eval';
export type { EvalResult } from './eval';
export { writeReport, writeMatrix } from './report';
