// The one item shape every task source gives the env: an image, a question and its answer.
import type { Box, IntensityWindow, RawImage } from '../tools/image';

export const QUESTION_TYPES = ['modality', 'anatomy', 'diagnosis', 'grading', 'attribute'] as const;
export type QuestionType = (typeof QUESTION_TYPES)[number];

export interface VqaItem {
  /** Stable id (used for seeded splits). */
  id: string;
  /** The image, at its original size and bit depth. */
  image: RawImage;
  /** The question text. */
  question: string;
  /** Option texts for multiple choice; empty for open questions. */
  options: string[];
  /** Index into options (multiple choice) or the reference text (open questions). */
  answer: number | string;
  /** Imaging modality (lower case, e.g. 'ct', 'xray'; 'unknown' when the source does not say). */
  modality: string;
  /** One of QUESTION_TYPES for the synthetic task; free text (e.g. "open", "closed") from datasets. */
  questionType: string;
  /** Ground-truth finding box in original pixels, when known (IoU reward, expert policy). */
  box?: Box;
  /** Window that makes the deciding detail legible, when one is needed. */
  window?: IntensityWindow;
  /** Extra fields a source wants to carry (difficulty knobs, source file, …). */
  meta?: Record<string, unknown>;
}

export type Split = 'train' | 'val' | 'test';

export interface StreamOptions {
  /** Which split to stream (items are assigned by a hash of (seed, id)); default all items. */
  split?: Split;
  /** Seed of the split assignment and of the shuffle. */
  seed?: number;
  /** Shuffle order (seeded); default false (file order). */
  shuffle?: boolean;
  /** Split fractions [train, val, test]; default [0.8, 0.1, 0.1]. */
  fractions?: [number, number, number];
}

/** Any task source: random access by index, and a streaming read. */
export interface Dataset {
  /** The dataset's name. */
  readonly name: string;
  /** Number of items; Infinity for a generator. */
  readonly size: number;
  get(index: number): Promise<VqaItem>;
  stream(opts?: StreamOptions): AsyncIterable<VqaItem>;
}
