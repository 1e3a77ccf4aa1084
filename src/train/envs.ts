// Env construction and the item index ranges of a run: SFT demonstrations, GRPO prompts and the
// held-out eval set draw from disjoint ranges of the same generator, so no eval item is trained on.
import { makeVec, SHORT_SYSTEM_PROMPT, DEFAULT_SYSTEM_PROMPT, type VectorEnv, type MedGymOptions } from '../env';
import type { TrainConfig } from './config';

/** First item index of each range (the synthetic generator is endless and counter-based). */
export const INDEX_BASE = { sft: 0, grpo: 1 << 28, eval: 1 << 30 } as const;

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
    synth: { seed: c.synthSeed },
    ...extra,
  };
}

export function makeTrainVec(c: TrainConfig['env'], n: number, p: { imageTokens: number; maxSeq: number }, extra: MedGymOptions = {}): VectorEnv {
  return makeVec(c.id, n, envOptions(c, p, extra));
}
