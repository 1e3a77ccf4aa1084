/**
 * `medgym/env`: the environment alone (SPEC §3–7) — env, vector env, registry, checker, scripted
 * policies, image tools, datasets and the tokenizer — for a tool that drives episodes without the
 * trainer or the native policy. Loading it never loads the native addon.
 * @module
 */
export * from '../env';
export * as tools from '../tools';
export { ToolSession, executeToolCall, toolJsonSchemas } from '../tools';
export type { RawImage, ViewImage, Box, IntensityWindow } from '../tools';
export * as data from '../data';
export { SynthDataset, generateItem } from '../data/synth';
export type { SynthOptions } from '../data/synth';
export type { Dataset, VqaItem, Split, StreamOptions } from '../data/types';
export { openJsonl, openMedMnist, openVqaRad, openSlake, openPmcVqa, openOmniMedVqa, readNiftiSlice, readDicom, readImageFile, LoaderError } from '../data/loaders';
export * as tokenizer from '../tokenizer';
export { encode, decode, SPECIAL_TOKENS, VOCAB_SIZE } from '../tokenizer';
