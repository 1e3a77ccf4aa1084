// The environment: MedGymEnv, VectorEnv, the registry, the checker, protocol and baselines.
export { MedGymEnv } from './env';
export { VectorEnv } from './vector';
export type { VectorStepResult } from './vector';
export { registerEnv, listEnvs, envSpec, make, makeVec } from './registry';
export type { EnvSpec } from './registry';
export { checkEnv, assertEnv, EnvCheckError } from './checker';
export { buildPrompt, formatQuestion, toolResponseText, parseAssistant, sanitize, DEFAULT_SYSTEM_PROMPT, SHORT_SYSTEM_PROMPT, LETTERS, MAX_CALL_CHARS } from './protocol';
export type { ParsedSegment, ParsedCall } from './protocol';
export { expertPolicy, guessPolicy, readerPolicy, readTexture, QuestionOnlyBaseline } from './baselines';
export type { ScriptedPolicy } from './baselines';
export * from './types';

import type { MedGymEnv } from './env';
import type { ScriptedPolicy } from './baselines';
import type { StepResult } from './types';

/** Runs one episode of a scripted policy; returns the final step. */
export async function runEpisode(env: MedGymEnv, policy: ScriptedPolicy, reset: { seed?: number; options?: { index?: number } } = {}): Promise<StepResult> {
  let { observation, info } = await env.reset(reset);
  for (;;) {
    const r = await env.step(policy.act(observation, info));
    if (r.terminated || r.truncated) return r;
    ({ observation, info } = r);
  }
}
