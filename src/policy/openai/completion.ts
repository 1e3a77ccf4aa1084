// Checks on what a server answers: a /v1/models list, a chat completion (its model, its first choice).
// Anything else is an HttpPolicyError of kind 'malformed' naming the URL, never a TypeError deep inside.
import { HttpPolicyError } from './client';
import type { ChatCompletionChoice, ModelEntry } from './types';

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

const malformed = (url: string, what: string): HttpPolicyError => new HttpPolicyError(`${url}: ${what}`, url, 200, 'malformed');

/** data[] of a GET /models answer. */
export function modelEntries(j: unknown, url: string): ModelEntry[] {
  if (!isObject(j) || !Array.isArray(j.data)) throw malformed(url, 'expected {"data": [models…]}');
  return j.data.filter((e): e is ModelEntry => isObject(e) && typeof e.id === 'string');
}

/**
 * The first choice of a chat completion. The answer's `model` must be the one asked for, or a name that
 * extends it (OpenAI answers "gpt-4o-2024-08-06" for "gpt-4o", Ollama "llava:latest" for "llava").
 */
export function firstChoice(j: unknown, url: string, model: string): ChatCompletionChoice {
  if (!isObject(j)) throw malformed(url, 'expected a chat completion object');
  if (typeof j.model === 'string' && j.model !== model && !j.model.startsWith(model)) throw malformed(url, `the answer is for model ${JSON.stringify(j.model)} but ${JSON.stringify(model)} was asked for`);
  if (!Array.isArray(j.choices) || j.choices.length === 0) throw malformed(url, 'the answer has no choices');
  const c = j.choices[0] as unknown;
  if (!isObject(c) || !isObject(c.message)) throw malformed(url, 'choices[0] has no message');
  const content = c.message.content;
  if (content !== null && content !== undefined && typeof content !== 'string') throw malformed(url, 'choices[0].message.content is not a string');
  const calls = c.message.tool_calls;
  if (calls !== undefined && calls !== null) {
    if (!Array.isArray(calls)) throw malformed(url, 'choices[0].message.tool_calls is not an array');
    calls.forEach((t, k) => {
      if (!isObject(t) || !isObject(t.function) || typeof t.function.name !== 'string') throw malformed(url, `choices[0].message.tool_calls[${k}] has no function name`);
    });
  }
  return c as unknown as ChatCompletionChoice;
}

/** A 400 that says the conversation no longer fits the model's context (vLLM, OpenAI, llama.cpp, SGLang wordings). */
export function isContextFull(err: unknown): boolean {
  return err instanceof HttpPolicyError && err.status === 400 && /context[ _]length|context size|maximum context|context window|too long for the model/i.test(err.message);
}
