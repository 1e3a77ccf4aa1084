// The OpenAI chat-completions wire shapes medgym speaks both ways: HttpPolicy (./http_policy.ts) sends
// them to any OpenAI-compatible server, and `medgym serve` (src/server/openai/) answers them. The
// standard fields are OpenAI's; the few extensions are named as vLLM names them where vLLM has one
// (stop_token_ids, return_token_ids, choices[].token_ids) and prefixed `medgym_` otherwise. A server
// that does not know an extension ignores it (vLLM, SGLang) — HttpPolicy only sends them to a server
// whose /v1/models entry says it speaks the 'medgym-vlm' protocol. docs/bridges.md has the contract.

export interface ChatTextPart {
  type: 'text';
  text: string;
}

/** An image as a data URI (`data:image/png;base64,…`); medgym serve takes no remote URLs. */
export interface ChatImagePart {
  type: 'image_url';
  image_url: { url: string; detail?: 'auto' | 'low' | 'high' };
}

export type ChatContentPart = ChatTextPart | ChatImagePart;
export type ChatContent = string | ChatContentPart[];

export interface ChatToolCall {
  id: string;
  type: 'function';
  function: { name: string; /** JSON text of the arguments. */ arguments: string };
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool';
  content: ChatContent | null;
  /** assistant: the calls the model made (OpenAI tools mode). */
  tool_calls?: ChatToolCall[];
  /** tool: the call this message answers. */
  tool_call_id?: string;
  name?: string;
  /**
   * medgym extension, assistant messages to a 'medgym-vlm' server: the ids the model sampled for this
   * turn (choices[].token_ids of its response). The server renders them verbatim instead of encoding
   * `content`, so that a turn goes back into the context exactly as it was sampled (SPEC §7: token in,
   * token out; bytes that are not UTF-8 survive).
   */
  token_ids?: number[];
}

export interface ChatTool {
  type: 'function';
  function: { name: string; description?: string; parameters?: unknown };
}

/** SPEC §7 stream of the sequence a request samples (medgym extension, 'medgym-vlm' servers). */
export interface MedgymSampleKey {
  seed: number;
  step: number;
  prompt_index: number;
  sample_index: number;
  /** Draws this stream made in earlier turns (the sampled tokens so far): the next draw is number `counter`. */
  counter: number;
}

export interface ChatCompletionRequest {
  model: string;
  messages: ChatMessage[];
  /** 0 = greedy. Default 1. */
  temperature?: number;
  top_p?: number;
  max_tokens?: number;
  max_completion_tokens?: number;
  n?: number;
  stop?: string | string[];
  seed?: number;
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  tools?: ChatTool[];
  tool_choice?: 'none' | 'auto' | 'required' | { type: 'function'; function: { name: string } };
  /** Only -100 (never sample the id) is supported by medgym serve; banned ids add to the model's default bans. */
  logit_bias?: Record<string, number>;
  user?: string;
  /** vLLM extension: ids that end the completion (kept in the output). medgym-vlm defaults: <|eos|>, </tool_call>. */
  stop_token_ids?: number[];
  /** vLLM extension: report choices[].token_ids (and prompt_token_ids). */
  return_token_ids?: boolean;
  /** medgym extension: the stream to sample from (default {seed: seed ?? 0, step 0, prompt_index 0, sample_index: choice index, counter 0}). */
  medgym_sample_key?: MedgymSampleKey;
}

/** Why a choice ended, in medgym's words (GenerateResult.finishReason); OpenAI's finish_reason is coarser. */
export type MedgymFinishReason = 'stop_token' | 'stop_string' | 'max_new_tokens' | 'max_seq';

export interface ChatCompletionChoice {
  index: number;
  message: { role: 'assistant'; content: string | null; tool_calls?: ChatToolCall[] };
  finish_reason: 'stop' | 'length' | 'tool_calls';
  /** vLLM extension (with return_token_ids): the sampled ids, the stop token included. */
  token_ids?: number[];
  /** medgym extension. */
  medgym_finish_reason?: MedgymFinishReason;
}

export interface ChatCompletionResponse {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: ChatCompletionChoice[];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  /** vLLM extension (with return_token_ids). */
  prompt_token_ids?: number[];
}

/** The medgym block of a /v1/models entry: what a client needs to drive the model on the env. */
export interface MedgymModelInfo {
  /** 'medgym-vlm': SPEC §1 ids, the SPEC §3 transcript as chat (renderMedgymChat); 'qwen2-vl': the model's own chat template. */
  protocol: 'medgym-vlm' | 'qwen2-vl';
  /** Side of the square views the model takes (medgym-vlm: S; images of another size are a 400). */
  image_size?: number;
  channels?: 1 | 3;
  /** Context positions one view takes (Policy.imageTokens). */
  image_tokens: number;
  /** Longest context (Policy.maxSeq). */
  max_seq: number;
  vocab_size: number;
}

export interface ModelEntry {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
  medgym?: MedgymModelInfo;
}
