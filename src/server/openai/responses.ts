// Finished (or streaming) jobs → OpenAI's response objects: chat.completion, the
// chat.completion.chunk of each step, and the usage block. medgym extensions: choices[].token_ids
// and prompt_token_ids (with return_token_ids), medgym_finish_reason.
import type { ChatCompletionChoice, ChatCompletionResponse, ChatTokenLogprob, ChatToolCall, MedgymFinishReason } from '../../policy/openai/types';
import type { ChoiceDecoder } from './choice_decoder';
import type { Choice, Job } from './job';
import { parseToolCalls } from './tool_calls';

export interface CompletionMeta {
  id: string;
  created: number;
  model: string;
  /** Context positions of the prompt. */
  promptPositions: number;
  promptTokens: number[];
  returnTokenIds: boolean;
  /** Report each sampled id's log-prob (OpenAI's logprobs: true; no alternatives). */
  logprobs: boolean;
  /** Parse <tool_call> spans into tool_calls (the request has tools and tool_choice is not 'none'). */
  toolsMode: boolean;
}

export interface FinalChoice {
  content: string | null;
  toolCalls: ChatToolCall[];
  finishReason: ChatCompletionChoice['finish_reason'];
  medgymFinishReason: MedgymFinishReason;
}

export function finalChoice(meta: CompletionMeta, c: Choice): FinalChoice {
  const reason = c.finish ?? 'max_new_tokens';
  const parsed = meta.toolsMode ? parseToolCalls(c.text.text, `call_${meta.id.replace(/^chatcmpl-/, '')}_${c.index}`) : { content: c.text.text, calls: [] };
  const finishReason = parsed.calls.length ? 'tool_calls' : reason === 'stop_token' || reason === 'stop_string' ? 'stop' : 'length';
  // Whitespace around calls (Qwen writes a newline between them) is no content.
  return { content: parsed.content.trim().length || !parsed.calls.length ? parsed.content : null, toolCalls: parsed.calls, finishReason, medgymFinishReason: reason };
}

/** OpenAI's logprobs.content for sampled ids: every id (as token_ids has them), its text, bytes and log-prob. */
export function tokenLogprobs(ids: readonly number[], logp: readonly number[], decoder: ChoiceDecoder): ChatTokenLogprob[] {
  return ids.map((id, k) => ({ token: decoder.decode([id]), logprob: logp[k] ?? 0, bytes: decoder.tokenBytes ? decoder.tokenBytes(id) : null, top_logprobs: [] }));
}

export function usage(meta: CompletionMeta, job: Job): ChatCompletionResponse['usage'] {
  const completion = job.choices.reduce((s, c) => s + c.text.ids.length, 0);
  return { prompt_tokens: meta.promptPositions, completion_tokens: completion, total_tokens: meta.promptPositions + completion };
}

export function completionResponse(meta: CompletionMeta, job: Job): ChatCompletionResponse {
  const choices = job.choices.map((c): ChatCompletionChoice => {
    const f = finalChoice(meta, c);
    return {
      index: c.index,
      message: { role: 'assistant', content: f.content, ...(f.toolCalls.length ? { tool_calls: f.toolCalls } : {}) },
      finish_reason: f.finishReason,
      ...(meta.returnTokenIds ? { token_ids: [...c.text.ids] } : {}),
      ...(meta.logprobs ? { logprobs: { content: tokenLogprobs(c.text.ids, c.logp, job.input.decoder) } } : {}),
      medgym_finish_reason: f.medgymFinishReason,
    };
  });
  return {
    id: meta.id,
    object: 'chat.completion',
    created: meta.created,
    model: meta.model,
    choices,
    usage: usage(meta, job),
    ...(meta.returnTokenIds ? { prompt_token_ids: meta.promptTokens } : {}),
  };
}

/** A chat.completion.chunk around the given choice deltas (an empty list for the usage chunk). */
export function chunk(meta: CompletionMeta, choices: unknown[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { id: meta.id, object: 'chat.completion.chunk', created: meta.created, model: meta.model, choices, ...extra };
}
