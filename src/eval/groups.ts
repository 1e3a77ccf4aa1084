// Per-group summaries of an evaluation: Acc@1 (greedy) and Pass@K (from c correct of n samples) over
// all items, by modality, by question type and by (modality, question type) cell. Pure: the eval
// loop collects one ItemOutcome per held-out item and hands them here.
import { passAtKCurve } from './passk';

export interface EvalGroupResult {
  /** Items in the group. */
  items: number;
  /** Acc@1: share of the group's items whose greedy episode answered correctly. */
  acc1: number;
  /** Unbiased Pass@K averaged over the items, for K = 1..n: entry K−1. */
  passAtK: number[];
}

export interface ItemOutcome {
  /** The item's imaging modality. */
  modality: string;
  /** The item's question type. */
  questionType: string;
  /** The greedy episode answered correctly. */
  greedyCorrect: boolean;
  /** Correct samples out of `samples`. */
  c: number;
}

export interface GroupBreakdown {
  /** Per modality (keys sorted): the group's results. */
  byModality: Record<string, EvalGroupResult>;
  /** Per question type (keys sorted): the group's results. */
  byQuestionType: Record<string, EvalGroupResult>;
  /** modality → question type → group: the cells of the Med-R1 modality × question-type matrix. */
  byModalityQuestionType: Record<string, Record<string, EvalGroupResult>>;
}

export function summarizeGroup(xs: ItemOutcome[], samples: number): EvalGroupResult {
  return {
    items: xs.length,
    acc1: xs.reduce((s, x) => s + +x.greedyCorrect, 0) / Math.max(1, xs.length),
    passAtK: passAtKCurve(xs.map((x) => ({ n: samples, c: x.c }))),
  };
}

/** Groups by `key`, keys sorted. */
function by(xs: ItemOutcome[], samples: number, key: (x: ItemOutcome) => string): Record<string, EvalGroupResult> {
  const m = new Map<string, ItemOutcome[]>();
  for (const x of xs) m.set(key(x), [...(m.get(key(x)) ?? []), x]);
  return Object.fromEntries([...m.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([k, g]) => [k, summarizeGroup(g, samples)]));
}

export function breakdown(xs: ItemOutcome[], samples: number): GroupBreakdown {
  const modalities = [...new Set(xs.map((x) => x.modality))].sort((a, b) => a.localeCompare(b));
  return {
    byModality: by(xs, samples, (x) => x.modality),
    byQuestionType: by(xs, samples, (x) => x.questionType),
    byModalityQuestionType: Object.fromEntries(modalities.map((m) => [m, by(xs.filter((x) => x.modality === m), samples, (x) => x.questionType)])),
  };
}
