// Observation, info and option types of MedGymEnv (Gymnasium names, async).
import type { Dataset } from '../data/types';
import type { SynthOptions } from '../data/synth/generator';
import type { BatchStats, EpisodeSummary, RewardBreakdown, RewardConfig, AnswerStatus } from '../rewards';
import type { Box, IntensityWindow, ViewImage } from '../tools/image';
import type { ResizeKernel } from '../tools/render';

export interface Observation {
  /** Text to append to the sequence (the prompt at reset, the tool responses after a step, '' at the end). */
  text: string;
  /** The same text as token ids (SPEC §1), tokenized once by the env. */
  tokens: number[];
  /** One view per <|image|> in text, in order, at the view size. */
  images: ViewImage[];
  /** Size of the full-resolution original (coordinates refer to it). */
  originalSize: {
    /** Width in pixels. */
    width: number;
    /** Height in pixels. */
    height: number;
  };
}

export type TruncationReason = 'max_turns' | 'max_new_tokens' | 'max_total_tokens';

export interface ToolCallRecord {
  /** The assistant segment (0-based) that made the call. */
  turn: number;
  /** Tool name, e.g. "zoom_in". */
  name: string;
  /** The call parsed, validated and ran. */
  ok: boolean;
  /** Why it failed, when it did. */
  error?: string;
  /** Regions of the original the call showed. */
  boxes: Box[];
}

export interface GroundTruth {
  /** Index of the correct option (multiple choice) or the reference text (open question). */
  answer: number | string;
  /** Option letter for multiple choice. */
  letter?: string;
  /** The correct answer as text. */
  answerText: string;
  /** The finding's box in original pixels, when the task has one. */
  box?: Box;
  /** The intensity window that shows the finding, when the task has one. */
  window?: IntensityWindow;
  /** Source-specific extras (generator parameters, dataset row fields). */
  meta?: Record<string, unknown>;
}

export interface StepInfo {
  /** Stable id of the task (dataset item) of this episode. */
  taskId: string;
  /** Imaging modality, e.g. "ct", "xray". */
  modality: string;
  /** Question type, e.g. "location", "presence". */
  questionType: string;
  /** Answer options of a multiple-choice question (empty for an open question). */
  options: string[];
  /** Assistant segments consumed so far. */
  turn: number;
  /** Tokens in the episode so far (prompt, actions, responses; images count imageTokens each). */
  totalTokens: number;
  /** Every tool call so far, in order. */
  toolCalls: ToolCallRecord[];
  /** Format problems found in the assistant's segments, in order. */
  formatErrors: string[];
  /** After the episode, or from reset when revealGroundTruth is set. */
  groundTruth?: GroundTruth;
  /** At the end: the graded answer. */
  answer?: {
    /** The answer text as written (its first 200 characters). */
    raw: string;
    /** How it was graded; 'none' when the episode was truncated (nothing graded). */
    status: AnswerStatus | 'none';
    /** The answer was graded correct. */
    correct: boolean;
  };
  /** When truncated: the limit that cut the episode. */
  truncationReason?: TruncationReason;
  /** At the end: weighted total and each component. */
  reward?: RewardBreakdown;
  /** At the end: what the rewards saw of the episode. */
  summary?: EpisodeSummary;
  /** VectorEnv only: this step reset the sub-env (its action was ignored). */
  autoreset?: boolean;
}

export interface StepResult {
  /** What the policy sees next: the tool responses and their views ('' and no views at the end). */
  observation: Observation;
  /** The episode's reward, given once at the end (0 on intermediate steps). */
  reward: number;
  /** The episode ended with an answer (or an invalid final segment). */
  terminated: boolean;
  /** The episode was cut by a limit (`info.truncationReason` says which). */
  truncated: boolean;
  /** Step details: task, tool calls so far, format errors, and at the end the graded answer and reward. */
  info: StepInfo;
}

export interface MedGymOptions {
  /** Task source; default the embedded generator MedVista-Synth-v0 with `synth` options. */
  dataset?: Dataset;
  /** Generator knobs when no dataset is given. */
  synth?: SynthOptions;
  /** Worker threads generating synthetic items off the event loop (shared process-wide). Default 0: on the calling thread. */
  generatorWorkers?: number;
  /** Side of the square views (SPEC §1 image_size S). Default 64. */
  viewSize?: number;
  /** View channels (SPEC §1 C): 1 or 3. Default 3. */
  viewChannels?: 1 | 3;
  /** Resampling kernel for views. Default lanczos3. */
  resizeKernel?: ResizeKernel;
  /** System text of the prompt. Default DEFAULT_SYSTEM_PROMPT. */
  systemPrompt?: string;
  /** Assistant segments per episode; reaching it without an answer truncates. Default 6. */
  maxTurns?: number;
  /** Tokens in one assistant segment; more truncates the episode. Default 512. */
  maxNewTokensPerTurn?: number;
  /** Tokens in the whole episode; reaching it truncates. Default 8192. */
  maxTotalTokens?: number;
  /** Sequence positions one <|image|> takes in the budget (the policy's N_p). Default 1. */
  imageTokens?: number;
  /** Tool calls executed per segment; extra ones get an error response. Default 4. */
  maxToolCallsPerTurn?: number;
  /** Reward weights and custom components. Default accuracy 1, format 0.1. */
  rewards?: RewardConfig;
  /** Generated or loaded items kept (by index) for repeated resets, as GRPO's G samples per prompt. Default 64 (makeVec: max(64, n), shared); 0 disables. */
  itemCacheSize?: number;
  /** Rendered views kept (by item id, window, region and operation). Default 1024 (makeVec: max(1024, 32 n), shared); 0 disables. Item ids must identify pixels. */
  viewCacheSize?: number;
  /** Put the ground truth in info from reset on (scripted experts, SFT demonstrations). Default false. */
  revealGroundTruth?: boolean;
  /**
   * The task needs a tool: an answer given before any successful tool call's output is a format
   * error (no format reward; accuracy is graded as usual). Default false.
   */
  requireTool?: boolean;
}

export interface ResetOptions {
  /** Item index in the task source (default: drawn from the env's seeded stream). */
  index?: number;
}

export type { BatchStats };
