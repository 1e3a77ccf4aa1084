// SPEC §4 rewards: accuracy, format, tool, IoU, summed with configurable weights. Each component is
// a function of the finished episode, so users can add their own beside them.
import { iou as boxIou } from '../tools/geometry';
import type { Box } from '../tools/image';
import type { AnswerStatus } from './answer';

export { gradeAnswer, normalizeAnswer, ANSWER_MARGIN } from './answer';
export type { AnswerStatus, GradedAnswer } from './answer';

/** What a reward sees of a finished episode. */
export interface EpisodeSummary {
  /** Answer status; 'none' when the episode ended without an <answer>. */
  answerStatus: AnswerStatus | 'none';
  /** The answer is valid and matches the ground truth. */
  correct: boolean;
  /**
   * The episode answered with a gradable answer (status 'ok': one option, not empty, not too long),
   * with no format error in any segment (a repeated tool call, or an answer before any tool output
   * where the task requires a tool, count as such) and no failed tool call.
   */
  wellFormed: boolean;
  /** Tool calls made (failed ones included). */
  toolCalls: number;
  /** Tool calls that failed. */
  toolErrors: number;
  /** Regions the policy looked at through zoom_in / crop_multi. */
  zoomBoxes: Box[];
  /** Ground-truth finding box, when the task has one. */
  gtBox?: Box;
  /** The episode was cut by a limit before answering. */
  truncated: boolean;
}

export type RewardFn = (ep: EpisodeSummary) => number;

/** accuracy: 1 for a correct, valid answer (SPEC §7 rules), else 0. */
export const accuracyReward: RewardFn = (ep) => (ep.correct ? 1 : 0);
/** format: 1 for a well-formed episode with a gradable answer (EpisodeSummary.wellFormed), else 0. */
export const formatReward: RewardFn = (ep) => (ep.wellFormed ? 1 : 0);
/** tool: 1 when at least one tool call succeeded and the answer is correct (failed calls earn nothing). */
export const toolReward: RewardFn = (ep) => (ep.correct && ep.toolCalls - ep.toolErrors > 0 ? 1 : 0);
/** iou: IoU of the best zoom box with the ground-truth finding box (0 without either). */
export const iouReward: RewardFn = (ep) => (ep.gtBox ? Math.max(0, ...ep.zoomBoxes.map((b) => boxIou(b, ep.gtBox!))) : 0);

/** Whether some zoom box holds the centre of the ground-truth finding (the policy looked in the right place); undefined without a box. */
export function zoomHit(ep: Pick<EpisodeSummary, 'zoomBoxes' | 'gtBox'>): boolean | undefined {
  const g = ep.gtBox;
  if (!g) return undefined;
  const cx = (g[0] + g[2]) / 2;
  const cy = (g[1] + g[3]) / 2;
  return ep.zoomBoxes.some((b) => b[0] <= cx && cx < b[2] && b[1] <= cy && cy < b[3]);
}

/** Share of episodes with a finding box whose zoom hit it (null when none has a box). */
export function zoomHitRate(episodes: { zoomHit?: boolean }[]): number | null {
  const boxed = episodes.filter((e) => e.zoomHit !== undefined);
  return boxed.length ? boxed.filter((e) => e.zoomHit).length / boxed.length : null;
}

export const BUILTIN_REWARDS = { accuracy: accuracyReward, format: formatReward, tool: toolReward, iou: iouReward };

/**
 * Weights of the reward sum. Built-in names take a number; extra entries take { fn, weight }.
 * Defaults: accuracy 1, format 0.1, tool 0, iou 0 (RECIPE's reward = accuracy + 0.1·format).
 */
export interface RewardConfig {
  /** Weight of `accuracy` (1 for a correct, valid answer). Default 1. */
  accuracy?: number;
  /** Weight of `format` (1 for a well-formed episode). Default 0.1. */
  format?: number;
  /** Weight of `tool` (1 for a correct answer after a successful tool call). Default 0. */
  tool?: number;
  /** Weight of `iou` (best zoom box vs the finding box). Default 0. */
  iou?: number;
  /** A custom reward: `{ fn, weight }` (a number only for the built-in names). */
  [custom: string]: number | { fn: RewardFn; weight: number } | undefined;
}

export const DEFAULT_REWARDS: Required<Pick<RewardConfig, 'accuracy' | 'format' | 'tool' | 'iou'>> = { accuracy: 1, format: 0.1, tool: 0, iou: 0 };

export interface RewardBreakdown {
  /** Weighted sum of the components. */
  total: number;
  /** Unweighted value of each component. */
  components: Record<string, number>;
}

/** Builds the weighted sum; unknown names without a fn are an error at construction. */
export function composeRewards(config: RewardConfig = {}): (ep: EpisodeSummary) => RewardBreakdown {
  const merged: RewardConfig = { ...DEFAULT_REWARDS, ...config };
  const parts: { name: string; fn: RewardFn; weight: number }[] = [];
  for (const [name, v] of Object.entries(merged)) {
    if (v === undefined) continue;
    if (typeof v === 'number') {
      const fn = (BUILTIN_REWARDS as Record<string, RewardFn>)[name];
      if (!fn) throw new TypeError(`Unknown reward ${JSON.stringify(name)}: give { fn, weight } for a custom reward`);
      if (!Number.isFinite(v)) throw new RangeError(`Expected finite weight for reward ${name} but received ${v}`);
      parts.push({ name, fn, weight: v });
    } else {
      if (typeof v.fn !== 'function' || !Number.isFinite(v.weight)) throw new TypeError(`Expected { fn, weight } for reward ${name}`);
      parts.push({ name, fn: v.fn, weight: v.weight });
    }
  }
  return (ep) => {
    const components: Record<string, number> = {};
    let total = 0;
    for (const p of parts) {
      const value = p.fn(ep);
      components[p.name] = value;
      if (p.weight !== 0) total += p.weight * value;
    }
    return { total, components };
  };
}

/** Per-batch metrics (SPEC §7): means, the share answering without any tool call, invalid answers. */
export interface BatchStats {
  /** Episodes in the batch. */
  episodes: number;
  /** Mean of the weighted total reward. */
  meanReward: number;
  /** Mean of each reward component. */
  components: Record<string, number>;
  /** Share of correct episodes. */
  accuracy: number;
  /** Share of episodes that answered without a single tool call (watch for collapse to 0 tool use). */
  noToolAnswerShare: number;
  /** Mean tool calls per episode. */
  meanToolCalls: number;
  /** Failed tool calls over all tool calls. */
  toolErrorRate: number;
  /** Share of episodes cut by a limit. */
  truncatedShare: number;
  /** Count of episodes by answer status (empty, multiple, too_long, unrecognized, none, ok). */
  answerStatus: Record<string, number>;
  /** Accuracy and episode count per modality and per question type (entries that carry them). */
  byModality: Record<string, { episodes: number; accuracy: number }>;
  /** Accuracy and episode count per question type. */
  byQuestionType: Record<string, { episodes: number; accuracy: number }>;
}

export interface BatchEntry {
  /** What the rewards saw of the episode (`info.summary` at its end). */
  summary: EpisodeSummary;
  /** Its reward (`info.reward` at its end, or `composeRewards(...)(summary)`). */
  reward: RewardBreakdown;
  /** Modality, for `byModality`. */
  modality?: string;
  /** Question type, for `byQuestionType`. */
  questionType?: string;
}

function groupAccuracy(eps: BatchEntry[], key: (e: BatchEntry) => string | undefined): Record<string, { episodes: number; accuracy: number }> {
  const out: Record<string, { episodes: number; accuracy: number }> = {};
  for (const e of eps) {
    const k = key(e);
    if (k === undefined) continue;
    const g = (out[k] ??= { episodes: 0, accuracy: 0 });
    g.accuracy = (g.accuracy * g.episodes + (e.summary.correct ? 1 : 0)) / (g.episodes + 1);
    g.episodes++;
  }
  return out;
}

export function batchStats(eps: BatchEntry[]): BatchStats {
  const n = eps.length;
  const mean = (f: (e: (typeof eps)[number]) => number): number => (n ? eps.reduce((s, e) => s + f(e), 0) / n : 0);
  const components: Record<string, number> = {};
  for (const e of eps) for (const [k, v] of Object.entries(e.reward.components)) components[k] = (components[k] ?? 0) + v / n;
  const answerStatus: Record<string, number> = {};
  for (const e of eps) answerStatus[e.summary.answerStatus] = (answerStatus[e.summary.answerStatus] ?? 0) + 1;
  const calls = eps.reduce((s, e) => s + e.summary.toolCalls, 0);
  const errors = eps.reduce((s, e) => s + e.summary.toolErrors, 0);
  return {
    episodes: n,
    meanReward: mean((e) => e.reward.total),
    components,
    accuracy: mean((e) => (e.summary.correct ? 1 : 0)),
    noToolAnswerShare: mean((e) => (e.summary.answerStatus !== 'none' && e.summary.toolCalls === 0 ? 1 : 0)),
    meanToolCalls: mean((e) => e.summary.toolCalls),
    toolErrorRate: calls ? errors / calls : 0,
    truncatedShare: mean((e) => (e.summary.truncated ? 1 : 0)),
    answerStatus,
    byModality: groupAccuracy(eps, (e) => e.modality),
    byQuestionType: groupAccuracy(eps, (e) => e.questionType),
  };
}
