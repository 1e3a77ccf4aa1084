// Env ids → constructors, as Gymnasium's registry: make(id, options), makeVec(id, n, options).
import { makeCaches, type EnvCaches } from './cache';
import { MedGymEnv } from './env';
import type { MedGymOptions } from './types';
import { SHORT_SYSTEM_PROMPT } from './protocol';
import { VectorEnv } from './vector';
import { didYouMean } from '../util/did_you_mean';

export interface EnvSpec {
  /** The id make() takes, e.g. 'MedVista-Synth-v0'. */
  id: string;
  /** One line on what the env is (listEnvs shows it). */
  description: string;
  /** Options the id stands for; make() merges the caller's on top (synth knobs merged key by key). */
  defaults: MedGymOptions;
  /** True when make() needs options the spec cannot supply (e.g. a dataset). */
  requiresDataset?: boolean;
}

const REGISTRY = new Map<string, EnvSpec>();

export function registerEnv(spec: EnvSpec): void {
  if (!/^[A-Za-z][\w.-]*-v\d+$/.test(spec.id)) throw new RangeError(`Expected env id like "Name-v0" but received ${JSON.stringify(spec.id)}`);
  if (REGISTRY.has(spec.id)) throw new Error(`env id ${spec.id} is already registered`);
  REGISTRY.set(spec.id, spec);
}

export function listEnvs(): EnvSpec[] {
  return [...REGISTRY.values()];
}

export function envSpec(id: string): EnvSpec {
  const s = REGISTRY.get(id);
  if (!s) throw new Error(`Unknown env id ${JSON.stringify(id)}${didYouMean(String(id), REGISTRY.keys())}; registered: ${[...REGISTRY.keys()].join(', ')}`);
  return s;
}

export function make(id: string, options: MedGymOptions = {}, caches?: EnvCaches): MedGymEnv {
  const spec = envSpec(id);
  if (spec.requiresDataset && !options.dataset) throw new Error(`${id} needs options.dataset (a Dataset from medgym's loaders)`);
  const merged: MedGymOptions = { ...spec.defaults, ...options, synth: { ...spec.defaults.synth, ...options.synth } };
  return new MedGymEnv(merged, id, caches);
}

export function makeVec(id: string, n: number, options: MedGymOptions = {}): VectorEnv {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`Expected positive integer number of envs but received ${n}`);
  // Sub-envs share caches: the same item drawn by two of them is generated and rendered once.
  // Sized for what is in flight (a 256x256 item is ~100-200 kB, a 64x64 view 12 kB), not per sub-env.
  const caches = makeCaches(options.itemCacheSize ?? Math.max(64, n), options.viewCacheSize ?? Math.max(1024, 32 * n));
  return new VectorEnv(Array.from({ length: n }, () => make(id, options, caches)));
}

registerEnv({
  id: 'MedVista-Synth-v0',
  description: 'Embedded synthetic task: 8 modalities, 5 question types, 4 options; 25% easy items, half of hard CT/MRI items need a window.',
  defaults: {},
});
registerEnv({
  id: 'MedVista-Synth-Small-v0',
  description: 'Small-finding subset: every item hard (pixel-scale detail, needs zoom_in to one cell); no modality questions.',
  defaults: { synth: { easyFraction: 0, questionTypes: ['anatomy', 'diagnosis', 'grading', 'attribute'] } },
});
registerEnv({
  id: 'MedVista-Synth-Easy-v0',
  description: 'Curriculum start: coarse detail and larger findings, answerable from the global view.',
  defaults: { synth: { easyFraction: 1 } },
});
registerEnv({
  id: 'MedVista-Synth-Lesion-v0',
  description: "RECIPE's task: greyscale lesion texture, 3 options, always needs zoom_in to one cell; grey 64x64 view of 256x256, short system prompt.",
  defaults: { viewChannels: 1, systemPrompt: SHORT_SYSTEM_PROMPT, synth: { modalities: ['xray', 'ultrasound', 'oct'], questionTypes: ['attribute'], numOptions: 3, easyFraction: 0 } },
});
registerEnv({
  id: 'MedVista-Synth-Lesion-Visible-v0',
  description: "`medgym train`'s default: the Lesion task with the finding plainly visible at the global view (radius 0.09-0.1 of the side, contrast 4) and options in class order (letter = texture); the texture is still only legible after zoom_in.",
  defaults: { viewChannels: 1, systemPrompt: SHORT_SYSTEM_PROMPT, synth: { modalities: ['xray', 'ultrasound', 'oct'], questionTypes: ['attribute'], numOptions: 3, easyFraction: 0, findingRadius: [0.09, 0.1], contrast: 4, optionOrder: 'fixed' } },
});
registerEnv({
  id: 'MedGym-Dataset-v0',
  description: 'Any Dataset from medgym loaders (JSONL, MedMNIST, VQA-RAD, SLAKE, PMC-VQA, OmniMedVQA, NIfTI, DICOM): pass options.dataset.',
  defaults: {},
  requiresDataset: true,
});
