// What the server needs of the model it serves, whatever its family: the /v1/models block, the
// request's messages → prompt ids and images, the sampling it fixes (vocabulary, stops, bans), ids →
// text, and an engine for the scheduler. medgym-vlm: ./medgym_model.ts; Qwen2-VL: ./qwen_model.ts.
import type { MedgymModelInfo } from '../../policy/openai/types';
import type { ViewImage } from '../../tools/image';
import type { ChoiceDecoder } from './choice_decoder';
import type { ServeEngine } from './engine';
import type { ChatRequest } from './request_schema';
import type { ModelSampling } from './sampling';

/** The server's per-request limits (OpenAIServerOptions). */
export interface RequestLimits {
  maxMessages: number;
  maxImages: number;
}

export interface Prompt {
  /** The model's ids of the rendered conversation. */
  tokens: number[];
  /** Decoded images, one per placeholder of `tokens`, in order. */
  images: ViewImage[];
  /** Context positions the prompt takes (usage.prompt_tokens). */
  positions: number;
}

export interface ServedModel {
  readonly info: MedgymModelInfo;
  /** Where the model runs, for the start-up line ("cpu", a GPU's name). */
  readonly deviceName: string;
  readonly sampling: ModelSampling;
  readonly decoder: ChoiceDecoder;
  /** The request's conversation as the model's input; bad input is a 400 naming the field. */
  buildPrompt(req: ChatRequest, limits: RequestLimits): Promise<Prompt>;
  /** A generation engine (the scheduler owns it and disposes it). */
  createEngine(): ServeEngine;
  dispose(): void;
}
