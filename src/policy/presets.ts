// Config presets and the checkpoint's config JSON (SPEC §1 snake_case names).
import { VOCAB_SIZE } from '../tokenizer';
import type { PolicyConfig, PolicyPreset } from './types';

/** Views match the env default (64×64, 3 channels); 8×8 patches → 64 positions per image. */
export const POLICY_PRESETS: Record<PolicyPreset, PolicyConfig> = {
  tiny: { vocabSize: VOCAB_SIZE, dModel: 128, nLayer: 4, nHead: 4, maxSeq: 1024, patch: 8, imageSize: 64, channels: 3 },
  small: { vocabSize: VOCAB_SIZE, dModel: 384, nLayer: 6, nHead: 6, maxSeq: 1024, patch: 8, imageSize: 64, channels: 3 },
  base: { vocabSize: VOCAB_SIZE, dModel: 768, nLayer: 12, nHead: 12, maxSeq: 2048, patch: 8, imageSize: 64, channels: 3 },
};

const FIELDS: [keyof PolicyConfig, string, number, number][] = [
  ['vocabSize', 'vocab_size', 1, 1 << 20],
  ['dModel', 'd_model', 1, 16384],
  ['nLayer', 'n_layer', 1, 256],
  ['nHead', 'n_head', 1, 16384],
  ['maxSeq', 'max_seq', 1, 1 << 20],
  ['patch', 'patch', 1, 256],
  ['imageSize', 'image_size', 1, 4096],
  ['channels', 'channels', 1, 3],
];

/** Throws a RangeError/TypeError naming the field when a config is unusable. */
export function validateConfig(c: PolicyConfig, where = 'config'): PolicyConfig {
  if (!c || typeof c !== 'object') throw new TypeError(`Expected an object for \`${where}\``);
  for (const [k, , lo, hi] of FIELDS) {
    const v = (c as unknown as Record<string, unknown>)[k];
    if (typeof v !== 'number' || !Number.isInteger(v)) throw new TypeError(`Expected an integer for \`${where}.${k}\` but received ${String(v)}`);
    if (v < lo || v > hi) throw new RangeError(`Expected \`${where}.${k}\` in [${lo}, ${hi}] but received ${v}`);
  }
  if (c.channels !== 1 && c.channels !== 3) throw new RangeError(`Expected \`${where}.channels\` 1 or 3 but received ${c.channels}`);
  if (c.dModel % c.nHead !== 0) throw new RangeError(`Expected \`${where}.nHead\` (${c.nHead}) to divide dModel (${c.dModel})`);
  if (c.imageSize % c.patch !== 0) throw new RangeError(`Expected \`${where}.imageSize\` (${c.imageSize}) to be a multiple of patch (${c.patch})`);
  if (c.vocabSize !== VOCAB_SIZE) throw new RangeError(`Expected \`${where}.vocabSize\` ${VOCAB_SIZE} (the tokenizer's) but received ${c.vocabSize}`);
  return c;
}

/** The checkpoint metadata form: {"vocab_size": ..., "d_model": ..., ...}. */
export function configToJson(c: PolicyConfig): string {
  const o: Record<string, number> = {};
  for (const [k, s] of FIELDS) o[s] = c[k] as number;
  return JSON.stringify(o);
}

export function configFromJson(text: string, where: string): PolicyConfig {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    throw new RangeError(`${where}: metadata "config" is not valid JSON`);
  }
  if (!o || typeof o !== 'object' || Array.isArray(o)) throw new RangeError(`${where}: metadata "config" must be a JSON object`);
  const rec = o as Record<string, unknown>;
  const c: Record<string, unknown> = {};
  for (const [k, s] of FIELDS) {
    if (!(s in rec)) throw new RangeError(`${where}: metadata "config" lacks "${s}"`);
    c[k] = rec[s];
  }
  return validateConfig(c as unknown as PolicyConfig, `${where} config`);
}

export function resolveConfig(config: PolicyPreset | (Partial<PolicyConfig> & { preset?: PolicyPreset })): PolicyConfig {
  if (typeof config === 'string') {
    if (!(config in POLICY_PRESETS)) throw new RangeError(`Expected a preset 'tiny' | 'small' | 'base' for \`config\` but received '${config}'`);
    return { ...POLICY_PRESETS[config] };
  }
  if (!config || typeof config !== 'object') throw new TypeError('Expected a preset name or a config object for `config`');
  const { preset, ...rest } = config;
  if (preset !== undefined && !(preset in POLICY_PRESETS)) throw new RangeError(`Expected \`config.preset\` 'tiny' | 'small' | 'base' but received '${preset}'`);
  return validateConfig({ ...POLICY_PRESETS[preset ?? 'small'], ...rest } as PolicyConfig);
}
