// Evaluation on held-out items (SPEC §6): Acc@1 with greedy decoding, unbiased Pass@K (K = 1..n)
// from n samples at temperature τ, per modality and question type, with tools and with tool calls
// banned. The items are the caller's: an ItemSource's held-out ones (src/rollout/items.ts), never trained on.
import type { VectorEnv } from '../env';
import type { Policy } from '../policy';
import { rollout, type Trajectory } from '../rollout';
import { zoomHitRate } from '../rewards';
import { breakdown, summarizeGroup, type EvalGroupResult, type GroupBreakdown, type ItemOutcome } from './groups';

export type { EvalGroupResult, GroupBreakdown };

export interface EvalModeResult extends EvalGroupResult, GroupBreakdown {
  /** Greedy episodes: share well formed, tool calls per episode, share answering without a tool. */
  formatRate: number;
  /** Greedy episodes: mean tool calls per episode. */
  toolCallsPerEpisode: number;
  /** Greedy episodes: share that answered without any tool call. */
  noToolShare: number;
  /** Greedy episodes: share whose zoom went to the finding (items with a box; null without). */
  zoomHit?: number | null;
  /** Accuracy of the n samples at τ (mean over all samples). */
  sampledAccuracy: number;
}

export interface EvalResult {
  /** The `label` option: what was evaluated (the trainer uses 'sft', 'final', 'control'; the CLI the model name). */
  label: string;
  /** Held-out items evaluated. */
  items: number;
  /** Samples per item for Pass@K (n). */
  samples: number;
  /** Sampling temperature τ of the n samples (the Acc@1 episode is greedy). */
  temperature: number;
  /** Results with the image tools available. */
  withTools: EvalModeResult;
  /** Results with tool calls banned; present when the `withoutTools` option was set. */
  withoutTools?: EvalModeResult;
}

export interface EvalOptions {
  /** Name of what is evaluated, copied to the result (and named in errors). */
  label: string;
  /** Item indices of the held-out set (ItemSource.evalItems). */
  items: readonly number[];
  /** Samples per item for Pass@K (n >= 1). */
  samples: number;
  /** Sampling temperature τ of the n samples. */
  temperature: number;
  /** Also evaluate with tool calls banned (EvalResult.withoutTools). */
  withoutTools: boolean;
  /** Seed of the sampling streams (greedy episodes use it, the samples seed + 1). */
  seed: number;
  /** Most tokens the policy may generate per turn. */
  maxNewTokensPerTurn: number;
  /** Called after each batch of episodes (progress). */
  onEpisodes?: (n: number) => void;
}

interface PerItem {
  modality: string;
  questionType: string;
  greedy: Trajectory;
  c: number;
}

async function evalMode(policy: Policy, vec: VectorEnv, o: EvalOptions, noTools: boolean): Promise<EvalModeResult> {
  const indices = o.items;
  const per: PerItem[] = [];
  const W = vec.numEnvs;
  for (let i = 0; i < indices.length; i += W) {
    const chunk = indices.slice(i, i + W);
    const g = await rollout(policy, vec, { seed: o.seed, step: i, items: chunk, groupSize: 1, temperature: 0, maxNewTokensPerTurn: o.maxNewTokensPerTurn, noTools });
    g.forEach((t) => per.push({ modality: t.modality, questionType: t.questionType, greedy: t, c: 0 }));
    o.onEpisodes?.(chunk.length);
  }
  const perChunk = Math.max(1, Math.floor(W / o.samples));
  let sampled = 0;
  for (let i = 0; i < indices.length; i += perChunk) {
    const chunk = indices.slice(i, i + perChunk);
    // Sampling streams keyed by (seed, chunk offset, prompt in chunk, sample): fixed for a given vector size.
    const s = await rollout(policy, vec, { seed: o.seed + 1, step: i, items: chunk, groupSize: o.samples, temperature: o.temperature, maxNewTokensPerTurn: o.maxNewTokensPerTurn, noTools });
    s.forEach((t) => {
      per[i + t.promptIndex].c += t.correct ? 1 : 0;
      sampled += t.correct ? 1 : 0;
    });
    o.onEpisodes?.(s.length);
  }
  const outcomes: ItemOutcome[] = per.map((x) => ({ modality: x.modality, questionType: x.questionType, greedyCorrect: x.greedy.correct, c: x.c }));
  const n = Math.max(1, per.length);
  return {
    ...summarizeGroup(outcomes, o.samples),
    formatRate: per.reduce((s, x) => s + +x.greedy.wellFormed, 0) / n,
    toolCallsPerEpisode: per.reduce((s, x) => s + x.greedy.toolCalls, 0) / n,
    noToolShare: per.reduce((s, x) => s + +(x.greedy.answerStatus !== 'none' && x.greedy.toolCalls === 0), 0) / n,
    zoomHit: zoomHitRate(per.map((x) => x.greedy)),
    sampledAccuracy: sampled / (n * o.samples),
    ...breakdown(outcomes, o.samples),
  };
}

/** Evaluates `policy` on the held-out items `o.items`, with tools and (optionally) without. */
export async function evaluate(policy: Policy, vec: VectorEnv, o: EvalOptions): Promise<EvalResult> {
  if (o.items.length === 0) throw new RangeError(`evaluate ${o.label}: no held-out items`);
  const withTools = await evalMode(policy, vec, o, false);
  const withoutTools = o.withoutTools ? await evalMode(policy, vec, o, true) : undefined;
  return { label: o.label, items: o.items.length, samples: o.samples, temperature: o.temperature, withTools, withoutTools };
}

/** Episodes an evaluation of `items` held-out items runs (for progress bars). */
export function evalEpisodes(o: { items: number; samples: number; withoutTools: boolean }): number {
  return o.items * (1 + o.samples) * (o.withoutTools ? 2 : 1);
}
