// The 'chat' protocol: any OpenAI-compatible VLM (vLLM, SGLang, llama.cpp, Ollama, a Qwen model behind
// `medgym serve`). The model gets a chat of its own kind: QWEN_SYSTEM_PROMPT, the views as PNG data URIs,
// the question; its answer (text, plus tool_calls in 'openai' tool format) becomes the env's action
// through qwenToEnvAction, and the env's responses go back as tool messages ('openai': matched to the
// calls by id, the views in one user message after them) or as one user message of <tool_response>
// blocks ('text': the tools described in the system text, as Qwen2.5 templates do). Token space is
// the server's: GenerateResult.tokens are the medgym ids of the action, logp is all 0.
import { decode, encode } from '../../tokenizer';
import { toolsSystemBlock } from '../../models/qwen2_vl/chat';
import { parseEnvPrompt, parseEnvResponse, qwenToEnvAction, type EnvToolResponse } from '../../models/qwen2_vl/protocol';
import type { FinishReason } from '../types';
import type { PendingTurn, SeqState, TurnOptions, WireProtocol } from './session';
import type { ChatCompletionChoice, ChatContentPart, ChatMessage, ChatTool, ChatToolCall } from './types';

export type ToolFormat = 'openai' | 'text';

export interface ChatProtocolOptions {
  systemPrompt: string;
  toolFormat: ToolFormat;
  /** The env's tools in OpenAI's function format. */
  tools: ChatTool[];
}

/** A env/model disagreement the chat mapping cannot represent (image counts that do not match). */
export class ChatProtocolError extends Error {
  /** Always 'ChatProtocolError'. */
  override name = 'ChatProtocolError';
}

const imagePart = (url: string): ChatContentPart => ({ type: 'image_url', image_url: { url } });
const TOOL_CALL_TEXT = /<tool_call>[\s\S]*?(?:<\/tool_call>|$)/g;

/** A deterministic 31-bit seed of (stream key, draws so far): FNV-1a over the five integers. */
export function requestSeed(st: Pick<SeqState, 'key' | 'counter'>): number {
  let h = 0x811c9dc5;
  for (const v of [st.key.seed, st.key.step, st.key.promptIndex, st.key.sampleIndex, st.counter]) {
    for (const part of [v >>> 0, Math.floor(v / 2 ** 32) >>> 0]) {
      for (let b = 0; b < 32; b += 8) h = Math.imul(h ^ ((part >>> b) & 0xff), 0x01000193);
    }
  }
  return (h >>> 0) & 0x7fffffff;
}

export class ChatProtocol implements WireProtocol {
  constructor(private readonly o: ChatProtocolOptions) {}

  promptMessages(tokens: number[], urls: string[]): ChatMessage[] {
    const p = parseEnvPrompt(decode(tokens));
    if (p.images !== urls.length) throw new ChatProtocolError(`the env prompt holds ${p.images} <|image|> but ${urls.length} image(s) came with it`);
    return [
      { role: 'system', content: this.o.systemPrompt },
      { role: 'user', content: [...urls.map(imagePart), { type: 'text', text: p.question }] },
    ];
  }

  responseMessages(st: SeqState, tokens: number[], urls: string[]): ChatMessage[] {
    const blocks = parseEnvResponse(decode(tokens));
    const n = blocks.reduce((a, b) => a + b.images, 0);
    if (n !== urls.length) throw new ChatProtocolError(`the env response holds ${n} <|image|> but ${urls.length} image(s) came with it`);
    const pending = st.pending!;
    return [pending.message, ...(this.o.toolFormat === 'text' ? textResults(blocks, urls) : openaiResults(blocks, urls, pending))];
  }

  check(): void {
    // Nothing to compare: the model's context is in its own tokens, which only the server knows.
  }

  request(st: SeqState, t: TurnOptions) {
    const withTools = t.toolsAllowed && this.o.tools.length > 0;
    const [system, ...rest] = st.messages;
    const systemText = withTools && this.o.toolFormat === 'text' ? `${this.o.systemPrompt}\n\n${toolsSystemBlock(this.o.tools.map(qwenTool))}` : this.o.systemPrompt;
    return {
      messages: [{ ...system, content: systemText }, ...rest],
      max_tokens: t.maxNewTokens,
      temperature: t.temperature,
      top_p: t.topP,
      seed: requestSeed(st),
      ...(withTools && this.o.toolFormat === 'openai' ? { tools: this.o.tools } : {}),
    };
  }

  result(_st: SeqState, c: ChatCompletionChoice, t: TurnOptions): { tokens: number[]; finishReason: FinishReason; pending: PendingTurn } {
    const content = c.message.content ?? '';
    const calls: ChatToolCall[] = (c.message.tool_calls ?? []).map((k, j) => ({ id: k.id || `call_${j}`, type: 'function', function: { name: k.function.name, arguments: String(k.function.arguments ?? '{}') } }));
    const useCalls = this.o.toolFormat === 'openai' && t.toolsAllowed && calls.length > 0;
    let pending: PendingTurn;
    let modelText: string;
    if (useCalls) {
      // The env runs the calls in the action's order: those written in the text first, then tool_calls.
      modelText = content + calls.map((k) => `<tool_call>${JSON.stringify({ name: k.function.name, arguments: k.function.arguments })}</tool_call>`).join('');
      pending = { message: { role: 'assistant', content: content.length ? content : null, tool_calls: calls }, textCalls: qwenToEnvAction(content).calls, callIds: calls.map((k) => k.id) };
    } else {
      // Calls the server parsed out of the text go back as text, so the conversation says what the model wrote.
      modelText = content + calls.map((k) => `\n<tool_call>\n{"name": ${JSON.stringify(k.function.name)}, "arguments": ${k.function.arguments}}\n</tool_call>`).join('');
      pending = { message: { role: 'assistant', content: modelText }, textCalls: 0, callIds: [] };
    }
    let action = qwenToEnvAction(modelText).action;
    // Tools banned (evaluation without tools): a call cannot be sampled by a native policy, so none reaches the env.
    if (!t.toolsAllowed) action = action.replace(TOOL_CALL_TEXT, '');
    return { tokens: encode(action), finishReason: c.finish_reason === 'length' ? 'max_new_tokens' : 'stop_token', pending };
  }
}

/** 'text' tool format: one user message of `<tool_response>\n…\n</tool_response>` blocks, each followed by its views. */
function textResults(blocks: EnvToolResponse[], urls: string[]): ChatMessage[] {
  const parts: ChatContentPart[] = [];
  let next = 0;
  blocks.forEach((b, k) => {
    parts.push({ type: 'text', text: `${k ? '\n' : ''}<tool_response>\n${b.text}\n</tool_response>` }, ...urls.slice(next, next + b.images).map(imagePart));
    next += b.images;
  });
  return parts.length ? [{ role: 'user', content: parts }] : [];
}

/**
 * 'openai' tool format: response k of the env answers the k-th call of the action (the text's calls
 * first, then tool_calls). Each tool_call gets its tool message (OpenAI requires one per call, right
 * after the assistant message); responses to no tool_call (calls in the text, the "no tool call"
 * error) follow as user text; the views, which tool messages cannot carry, in one user message last.
 */
function openaiResults(blocks: EnvToolResponse[], urls: string[], pending: PendingTurn): ChatMessage[] {
  const first = pending.textCalls;
  const tool: ChatMessage[] = pending.callIds.map((id, j) => ({ role: 'tool', tool_call_id: id, content: blocks[first + j]?.text ?? 'error: the call was not run' }));
  const other: ChatMessage[] = blocks.filter((_, k) => k < first || k >= first + pending.callIds.length).map((b) => ({ role: 'user', content: b.text }));
  const views: ChatMessage[] = urls.length ? [{ role: 'user', content: urls.map(imagePart) }] : [];
  return [...tool, ...other, ...views];
}

function qwenTool(t: ChatTool) {
  return { type: 'function' as const, function: { name: t.function.name, description: t.function.description ?? '', parameters: t.function.parameters } };
}
