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
  /** Who speaks: 'tool' messages carry a tool call's response. */
  role: 'system' | 'user' | 'assistant' | 'tool';
  /** Text, or text and image parts; null for an assistant turn that only calls tools. */
  content: ChatContent | null;
  /** assistant: the calls the model made (OpenAI tools mode). */
  tool_calls?: ChatToolCall[];
  /** tool: the call this message answers. */
  tool_call_id?: string;
  /** OpenAI's optional participant name. */
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
  /** Id of the model to use (a /v1/models entry). */
  model: string;
  /** The conversation so far (at least one message). */
  messages: ChatMessage[];
  /** 0 = greedy. Default 1. */
  temperature?: number;
  /** Nucleus sampling mass in (0, 1]. Default 1 (off). */
  top_p?: number;
  /** Most tokens to generate per choice (OpenAI's older name of max_completion_tokens). */
  max_tokens?: number;
  /** Most tokens to generate per choice; wins over max_tokens. Either way capped by the room left in the context. */
  max_completion_tokens?: number;
  /** Number of choices to sample (default 1). */
  n?: number;
  /** Strings that end a choice (kept in the output). */
  stop?: string | string[];
  /** Seed of the sampling stream (non-negative integer; default 0). */
  seed?: number;
  /** Answer as server-sent events (chat.completion.chunk) instead of one JSON body. */
  stream?: boolean;
  /** Options of a streamed answer (with stream). */
  stream_options?: {
    /** Send a last chunk with the token usage. */
    include_usage?: boolean;
  };
  /** Functions the model may call; with them (and tool_choice not 'none') medgym serve returns <tool_call> spans as tool_calls. */
  tools?: ChatTool[];
  /** 'none' disables the tools given; the other values are OpenAI's. */
  tool_choice?: 'none' | 'auto' | 'required' | { type: 'function'; function: { name: string } };
  /** Only -100 (never sample the id) is supported by medgym serve; banned ids add to the model's default bans. */
  logit_bias?: Record<string, number>;
  /** OpenAI's end-user id; medgym serve accepts and ignores it. */
  user?: string;
  /** vLLM extension: ids that end the completion (kept in the output). medgym-vlm defaults: <|eos|>, </tool_call>. */
  stop_token_ids?: number[];
  /** vLLM extension: report choices[].token_ids (and prompt_token_ids). */
  return_token_ids?: boolean;
  /** Report each sampled token's log-prob in choices[].logprobs.content. */
  logprobs?: boolean;
  /** Alternatives per token; medgym serve supports 0 only. */
  top_logprobs?: number;
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
  /** With logprobs: one entry per sampled id (medgym serve: the same ids as token_ids). */
  logprobs?: { content: ChatTokenLogprob[] | null } | null;
  /** medgym extension. */
  medgym_finish_reason?: MedgymFinishReason;
}

/** One sampled token's log-prob (OpenAI's ChatCompletionTokenLogprob). */
export interface ChatTokenLogprob {
  /** The token's text. */
  token: string;
  /** log_softmax(logits / τ)[token] over the full vocabulary (τ = 1 when greedy). */
  logprob: number;
  /** The bytes the token stands for, or null when the server does not know them. */
  bytes: number[] | null;
  /** Alternatives (always empty from medgym serve). */
  top_logprobs: { token: string; logprob: number; bytes: number[] | null }[];
}

export interface ChatCompletionResponse {
  /** Completion id. */
  id: string;
  /** Always 'chat.completion'. */
  object: 'chat.completion';
  /** Unix time in seconds. */
  created: number;
  /** Id of the model that answered. */
  model: string;
  /** One per requested choice (n), in index order. */
  choices: ChatCompletionChoice[];
  /** Token counts: prompt, generated (all choices), and their sum. */
  usage: {
    /** Tokens of the prompt. */
    prompt_tokens: number;
    /** Tokens generated, over all choices. */
    completion_tokens: number;
    /** prompt_tokens + completion_tokens. */
    total_tokens: number;
  };
  /** vLLM extension (with return_token_ids). */
  prompt_token_ids?: number[];
}

/** The medgym block of a /v1/models entry: what a client needs to drive the model on the env. */
export interface MedgymModelInfo {
  /** 'medgym-vlm': SPEC §1 ids, the SPEC §3 transcript as chat (renderMedgymChat); 'qwen2-vl': the model's own chat template. */
  protocol: 'medgym-vlm' | 'qwen2-vl';
  /** Side of the square views the model takes (medgym-vlm: S; images of another size are a 400). */
  image_size?: number;
  /** Channels of the views the model takes (1 grey, 3 RGB). */
  channels?: 1 | 3;
  /** Context positions one view takes (Policy.imageTokens). */
  image_tokens: number;
  /** Longest context (Policy.maxSeq). */
  max_seq: number;
  /** Size of the model's token vocabulary. */
  vocab_size: number;
}

export interface ModelEntry {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
  medgym?: MedgymModelInfo;
}
