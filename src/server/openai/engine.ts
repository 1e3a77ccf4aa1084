// What the scheduler needs of a model to batch chat completions (./scheduler.ts): prefill prompts
// under their stream keys, fork a prefilled sequence, advance a group of sequences by one token with
// shared sampling parameters, release sequences, dispose. Two implementations: medgym-vlm over a
// GenerationSession (./medgym_engine.ts), Qwen2-VL over a QwenSession (./qwen_engine.ts).
import type { MedgymFinishReason } from '../../policy/openai/types';
import type { ViewImage } from '../../tools/image';
import type { ChoiceKey } from './sampling';

export interface EnginePrompt {
  /** Token ids in the model's own vocabulary (Qwen: pad runs already expanded). */
  tokens: number[];
  /** One per image placeholder of `tokens`, in order. */
  images: ViewImage[];
  key: ChoiceKey;
}

/** Sampling parameters a decode step shares across its group of sequences. */
export interface DecodeParams {
  /** 0 = greedy. */
  temperature: number;
  topP: number;
  stopTokens: number[];
  bannedTokens: number[];
}

export interface EngineStep {
  /** The ids sampled this step (at most one). */
  tokens: ArrayLike<number>;
  /** Their log-probs, log_softmax(logits / τ)[id] over the full vocabulary (τ = 1 when greedy). */
  logp: ArrayLike<number>;
  finishReason: MedgymFinishReason;
}

export interface ServeEngine {
  /** Prefills the prompts (one batched call); returns their sequence handles, in order. */
  prefill(prompts: EnginePrompt[]): Promise<number[]>;
  /** `keys.length` sequences continuing `id`, each sampling from its key. */
  fork(id: number, keys: ChoiceKey[]): Promise<number[]>;
  /** One token for each sequence of `ids`. */
  step(ids: number[], params: DecodeParams): Promise<EngineStep[]>;
  release(ids: number[]): void;
  dispose(): void;
}
