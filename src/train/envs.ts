// Env construction for a run: the env id and options its vector envs are made with (the item
// indices they are reset to come from an ItemSource, src/rollout/items.ts).
import { makeVec, envSpec, SHORT_SYSTEM_PROMPT, DEFAULT_SYSTEM_PROMPT, type VectorEnv, type MedGymOptions } from '../env';
import { MODALITIES } from '../data/synth/looks';
import type { TrainConfig } from './config';


export function systemPromptOf(c: TrainConfig['env']): string {
  if (c.systemPrompt === 'none') return '';
  return c.systemPrompt === 'short' ? SHORT_SYSTEM_PROMPT : c.systemPrompt === 'default' ? DEFAULT_SYSTEM_PROMPT : c.systemPrompt;
}

/** Env options for a policy with `imageTokens` positions per image and `maxSeq` positions in all. */
export function envOptions(c: TrainConfig['env'], p: { imageTokens: number; maxSeq: number }, extra: MedGymOptions = {}): MedGymOptions {
  return {
    systemPrompt: systemPromptOf(c),
    maxTurns: c.maxTurns,
    maxNewTokensPerTurn: c.maxNewTokensPerTurn,
    // The episode must fit the model's context: the env truncates before a response would cross it
    // (the next segment needs room too, hence the margin of one turn).
    maxTotalTokens: Math.max(1, p.maxSeq - c.maxNewTokensPerTurn),
    imageTokens: p.imageTokens,
    rewards: c.rewards,
    requireTool: c.requireTool,
    ...extra,
    synth: { seed: c.synthSeed, ...extra.synth },
  };
}

export function makeTrainVec(c: TrainConfig['env'], n: number, p: { imageTokens: number; maxSeq: number }, extra: MedGymOptions = {}): VectorEnv {
  return makeVec(c.id, n, envOptions(c, p, extra));
}

/** Modalities a synthetic env id draws from (its registered synth options, else all eight); undefined for dataset envs. */
export function envModalities(id: string): string[] | undefined {
  const spec = envSpec(id);
  return spec.requiresDataset ? undefined : [...(spec.defaults.synth?.modalities ?? MODALITIES)];
}

/**
 * Options of the training envs only (SFT demonstrations, GRPO prompts): `trainModalities` narrows the
 * generator's modalities. The eval envs never get them, so held-out items cover every modality; the
 * index ranges stay disjoint either way. The report replays GRPO episodes with these same options.
 */
export function trainEnvExtra(c: TrainConfig['env']): MedGymOptions {
  // A dataset's train items are chosen by its ItemSource (src/rollout/items.ts), not by env options.
  if (!c.trainModalities || c.dataset) return {};
  const all = envModalities(c.id);
  if (!all) throw new RangeError(`env.trainModalities needs a synthetic env but ${c.id} reads a dataset`);
  const bad = c.trainModalities.filter((m) => !all.includes(m));
  if (bad.length) throw new RangeError(`env.trainModalities: ${bad.join(', ')} not among the modalities of ${c.id} (${all.join(', ')})`);
  return { synth: { modalities: [...new Set(c.trainModalities)] as (typeof MODALITIES)[number][] } };
}
