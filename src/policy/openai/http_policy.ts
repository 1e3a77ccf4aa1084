// HttpPolicy: a model served behind an OpenAI-compatible chat-completions API (vLLM, SGLang, llama.cpp
// server, Ollama, `medgym serve`) as a medgym Policy, so that rollout() and evaluation run it on the env.
// connect() reads GET {base}/models to find the model and its protocol: 'medgym-vlm' (token-exact, for a
// medgym-vlm checkpoint behind `medgym serve`) or 'chat' (any other model). docs/http_policy.md.
import { toolJsonSchemas } from '../../tools/schemas';
import { QWEN_SYSTEM_PROMPT, toQwenTools } from '../../models/qwen2_vl/protocol';
import type { Policy, SessionOptions } from '../types';
import { HttpPolicyError, OpenAITransport, type TransportOptions } from './client';
import { ChatProtocol, type ToolFormat } from './chat_protocol';
import { modelEntries } from './completion';
import { MedgymVlmProtocol } from './medgym_protocol';
import { HttpSession, type WireProtocol } from './session';
import type { MedgymModelInfo, ModelEntry } from './types';

export type HttpProtocol = 'medgym-vlm' | 'chat';

export interface HttpPolicyOptions extends TransportOptions {
  /** 'auto' (default): 'medgym-vlm' when the /models entry says so (data[].medgym.protocol), else 'chat'. */
  protocol?: 'auto' | HttpProtocol;
  /** chat protocol: tools as OpenAI `tools` + tool_calls ('openai', default) or described in the system text ('text'). */
  toolFormat?: ToolFormat;
  /** chat protocol: the system text (default QWEN_SYSTEM_PROMPT; the env's own describes medgym's token protocol). */
  systemPrompt?: string;
  /** Context positions of one view (default: the server's medgym block, else 256). The env budgets episodes with it. */
  imageTokens?: number;
  /** Longest context (default: the server's medgym block, else 32768). */
  maxSeq?: number;
}

const PROTOCOLS = ['auto', 'medgym-vlm', 'chat'] as const;
const TOOL_FORMATS = ['openai', 'text'] as const;
export const DEFAULT_HTTP_IMAGE_TOKENS = 256;
export const DEFAULT_HTTP_MAX_SEQ = 32768;

function choice<T extends string>(v: unknown, choices: readonly T[], name: string, fallback: T): T {
  if (v === undefined) return fallback;
  if (!(choices as readonly unknown[]).includes(v)) throw new RangeError(`Expected one of ${choices.join(', ')} for ${name} but received ${JSON.stringify(v)}`);
  return v as T;
}

function size(v: unknown, name: string): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isSafeInteger(v) || (v as number) < 1) throw new RangeError(`Expected an integer >= 1 for ${name} but received ${String(v)}`);
  return v as number;
}

export class HttpPolicy implements Policy {
  readonly imageTokens: number;
  readonly maxSeq: number;
  /** The protocol in use (what 'auto' chose). */
  readonly protocol: HttpProtocol;
  /** The medgym block of the model's /models entry, when the server is `medgym serve`. */
  readonly modelInfo?: MedgymModelInfo;
  private readonly wire: WireProtocol;

  private constructor(
    private readonly transport: OpenAITransport,
    /** The model name sent with every request. */
    readonly model: string,
    entry: ModelEntry,
    o: HttpPolicyOptions,
  ) {
    const asked = choice(o.protocol, PROTOCOLS, 'protocol', 'auto');
    const info = entry.medgym;
    this.modelInfo = info;
    this.protocol = asked === 'auto' ? (info?.protocol === 'medgym-vlm' ? 'medgym-vlm' : 'chat') : asked;
    if (this.protocol === 'medgym-vlm' && info?.protocol !== 'medgym-vlm') {
      throw new RangeError(`protocol 'medgym-vlm' needs a medgym-vlm model behind \`medgym serve\`, but ${transport.baseURL}/models does not describe ${JSON.stringify(model)} as one (use protocol 'chat')`);
    }
    this.imageTokens = size(o.imageTokens, 'imageTokens') ?? info?.image_tokens ?? DEFAULT_HTTP_IMAGE_TOKENS;
    this.maxSeq = size(o.maxSeq, 'maxSeq') ?? info?.max_seq ?? DEFAULT_HTTP_MAX_SEQ;
    if (o.systemPrompt !== undefined && typeof o.systemPrompt !== 'string') throw new TypeError('Expected a string for systemPrompt');
    const toolFormat = choice(o.toolFormat, TOOL_FORMATS, 'toolFormat', 'openai');
    this.wire =
      this.protocol === 'medgym-vlm'
        ? new MedgymVlmProtocol(transport.baseURL + '/chat/completions')
        : new ChatProtocol({ systemPrompt: o.systemPrompt ?? QWEN_SYSTEM_PROMPT, toolFormat, tools: toQwenTools(toolJsonSchemas()) });
  }

  /**
   * Connects to `baseURL` (e.g. "http://127.0.0.1:8000/v1"): GET {baseURL}/models must list `model`
   * (an error lists the ids it has). The returned policy sends every request to {baseURL}/chat/completions.
   */
  static async connect(baseURL: string, model: string, options: HttpPolicyOptions = {}): Promise<HttpPolicy> {
    if (typeof model !== 'string' || model.length === 0) throw new TypeError(`Expected a non-empty string for model but received ${JSON.stringify(model)}`);
    if (options === null || typeof options !== 'object') throw new TypeError('Expected an object for options');
    choice(options.protocol, PROTOCOLS, 'protocol', 'auto');
    choice(options.toolFormat, TOOL_FORMATS, 'toolFormat', 'openai');
    const transport = new OpenAITransport(baseURL, options);
    try {
      const url = transport.baseURL + '/models';
      const entries = modelEntries(await transport.getJson('/models'), url);
      const entry = entries.find((e) => e.id === model);
      if (!entry) {
        const ids = entries.map((e) => JSON.stringify(e.id)).join(', ');
        throw new HttpPolicyError(`${url}: no model ${JSON.stringify(model)}; the server has ${ids || 'none'}`, url, 200, 'http');
      }
      return new HttpPolicy(transport, model, entry, options);
    } catch (err) {
      transport.dispose();
      throw err;
    }
  }

  get baseURL(): string {
    return this.transport.baseURL;
  }

  createSession(options: SessionOptions = {}): HttpSession {
    if (this.transport.disposed) throw new Error('HttpPolicy: disposed');
    return new HttpSession(this.transport, this.model, this.wire, options);
  }

  /** Aborts the requests in flight; further calls throw. */
  dispose(): void {
    this.transport.dispose();
  }
}
