// HttpSession: medgym's GenerationSession over an OpenAI-compatible server. The server keeps no state:
// each sequence is its conversation (chat messages), its stream key and its medgym-space tokens here,
// and every generate() sends the whole conversation (one request per sequence, concurrently up to the
// transport's limit). How the env's ids become messages and an answer becomes env ids is the
// protocol's (./medgym_protocol.ts token-exact, ./chat_protocol.ts for any chat model).
import { fullSampleKey, type FullSampleKey } from '../sample_key';
import { DEFAULT_BANNED_TOKENS, DEFAULT_STOP_TOKENS } from '../session';
import { decode, TOOL_CALL_ID, VOCAB_SIZE } from '../../tokenizer';
import type { AppendInput, FinishReason, GenerateOptions, GenerateResult, GenerationSession, SampleKey, SessionOptions, SessionSequenceInput } from '../types';
import type { OpenAITransport } from './client';
import { firstChoice, isContextFull } from './completion';
import type { ChatCompletionChoice, ChatCompletionRequest, ChatMessage } from './types';
import { viewDataUris } from './views';

/** A sequence's stream key (its draw count is SeqState.counter). */
export type FullKey = FullSampleKey;

/** The assistant turn generate() returned, waiting for the env's response (append()). */
export interface PendingTurn {
  /** The assistant message as it goes back into the conversation. */
  message: ChatMessage;
  /** chat protocol: calls written in the text (before the tool_calls in the env's action). */
  textCalls: number;
  /** chat protocol: ids of the message's tool_calls, in order. */
  callIds: string[];
}

export interface SeqState {
  key: FullKey;
  /** Tokens this sequence sampled so far (medgym space): its stream's next draw. */
  counter: number;
  /** medgym-space ids: the env's prompt, the actions returned, the env's responses. */
  envTokens: number[];
  /** Views in envTokens. */
  images: number;
  /** The conversation so far, without the pending turn. */
  messages: ChatMessage[];
  pending?: PendingTurn;
}

/** generate()'s options, checked and with defaults. */
export interface TurnOptions {
  maxNewTokens: number;
  temperature: number;
  topP: number;
  stopTokens: number[];
  bannedTokens: number[];
  /** False when <tool_call> is banned (evaluation without tools). */
  toolsAllowed: boolean;
}

/** How one protocol maps the env's token space to chat messages and back. */
export interface WireProtocol {
  promptMessages(tokens: number[], urls: string[]): ChatMessage[];
  /** The pending turn's message and the env's response, as messages to add to the conversation. */
  responseMessages(st: SeqState, tokens: number[], urls: string[]): ChatMessage[];
  /** Throws when the conversation would not give the model exactly the context the session holds. */
  check(st: SeqState, what: string): void;
  request(st: SeqState, o: TurnOptions): Omit<ChatCompletionRequest, 'model'>;
  /** `logp`: the sampled ids' log-probs when the protocol's ids are the model's (medgym-vlm), else omitted (zeros). */
  result(st: SeqState, choice: ChatCompletionChoice, o: TurnOptions): { tokens: number[]; logp?: number[]; finishReason: FinishReason; pending: PendingTurn };
}

/** A call sequence the session cannot serve (append without a turn, generate twice, a disposed session). */
export class HttpSessionError extends Error {
  /** Always 'HttpSessionError'. */
  override name = 'HttpSessionError';
}

const isKeyInt = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

export class HttpSession implements GenerationSession {
  private readonly seqs = new Map<number, SeqState>();
  private nextId = 0;
  private added = 0;
  private readonly seed: number;
  private open = true;

  constructor(
    private readonly transport: OpenAITransport,
    private readonly model: string,
    private readonly protocol: WireProtocol,
    options: SessionOptions = {},
  ) {
    const seed = options.seed ?? 0;
    if (!isKeyInt(seed)) throw new RangeError(`Expected a non-negative integer for \`options.seed\` but received ${String(options.seed)}`);
    this.seed = seed;
  }

  async add(seqs: SessionSequenceInput[]): Promise<number[]> {
    this.alive();
    if (!Array.isArray(seqs)) throw new TypeError('Expected an Array for `seqs`');
    const built = await Promise.all(
      seqs.map(async (q, i) => {
        if (!q || typeof q !== 'object') throw new TypeError(`Expected an object for \`seqs[${i}]\``);
        const tokens = checkIds(q.tokens, `seqs[${i}].tokens`);
        const urls = await viewDataUris(q.images);
        const key = fullSampleKey(q.key, { seed: this.seed, step: 0, promptIndex: this.added + i, sampleIndex: 0 }, `seqs[${i}].key`);
        const counter = q.key?.counter ?? 0; // draws made before this prompt (a conversation resumed elsewhere)
        if (!isKeyInt(counter)) throw new RangeError(`Expected a non-negative integer for \`seqs[${i}].key.counter\` but received ${String(counter)}`);
        const st: SeqState = { key, counter, envTokens: tokens, images: urls.length, messages: this.protocol.promptMessages(tokens, urls) };
        this.protocol.check(st, `seqs[${i}]`);
        return st;
      }),
    );
    this.added += seqs.length;
    return built.map((st) => this.keep(st));
  }

  async append(items: { id: number; input: AppendInput }[]): Promise<void> {
    this.alive();
    if (!Array.isArray(items)) throw new TypeError('Expected an Array for `items`');
    const next = await Promise.all(
      items.map(async ({ id, input }, i) => {
        const st = this.state(id, `items[${i}].id`);
        if (!st.pending) throw new HttpSessionError(`items[${i}]: append() takes the env's response to a generated turn, and sequence ${id} has generated nothing since it was added or last appended to`);
        const tokens = checkIds(input?.tokens, `items[${i}].input.tokens`);
        const urls = await viewDataUris(input.images);
        const out: SeqState = { ...st, pending: undefined, envTokens: [...st.envTokens, ...tokens], images: st.images + urls.length };
        out.messages = [...st.messages, ...this.protocol.responseMessages(st, tokens, urls)];
        this.protocol.check(out, `sequence ${id}`);
        return { id, out };
      }),
    );
    for (const { id, out } of next) this.seqs.set(id, out); // all or nothing
  }

  async fork(id: number, n: number, keys?: SampleKey[]): Promise<number[]> {
    this.alive();
    const parent = this.state(id, 'id');
    if (!Number.isSafeInteger(n) || n < 1 || n > 4096) throw new RangeError(`Expected an integer in [1, 4096] for \`n\` but received ${String(n)}`);
    if (keys !== undefined && (!Array.isArray(keys) || keys.length !== n)) throw new RangeError(`Expected an Array of ${n} keys for \`keys\` (one per new sequence)`);
    const full = Array.from({ length: n }, (_, j) => fullSampleKey(keys?.[j], { ...parent.key, sampleIndex: j }, `keys[${j}]`));
    // Children go on from the parent's draws (keys[j].counter is ignored, as NativeGenerationSession does).
    return full.map((key) => this.keep({ ...parent, key, envTokens: [...parent.envTokens], messages: [...parent.messages] }));
  }

  async generate(ids: number[], options: GenerateOptions = {}): Promise<GenerateResult[]> {
    this.alive();
    if (!Array.isArray(ids)) throw new TypeError('Expected an Array of sequence ids for `ids`');
    const o = turnOptions(options);
    const states = ids.map((id, i) => {
      const st = this.state(id, `ids[${i}]`);
      if (st.pending) throw new HttpSessionError(`ids[${i}]: sequence ${id} already generated a turn; append() the env's response before generating again`);
      return st;
    });
    const outs = await Promise.all(states.map((st) => this.turn(st, o)));
    return ids.map((id, i) => {
      const st = states[i];
      const { tokens, logp, finishReason, pending } = outs[i];
      st.counter += tokens.length;
      st.envTokens.push(...tokens);
      st.pending = pending;
      return { id, tokens: Int32Array.from(tokens), text: decode(tokens), logp: logp ? Float32Array.from(logp) : new Float32Array(tokens.length), finishReason };
    });
  }

  tokens(id: number): Int32Array {
    return Int32Array.from(this.state(id, 'id').envTokens);
  }

  release(ids: number[]): void {
    if (!Array.isArray(ids)) throw new TypeError('Expected an Array of sequence ids for `ids`');
    ids.forEach((id, i) => this.state(id, `ids[${i}]`));
    for (const id of ids) this.seqs.delete(id);
  }

  dispose(): void {
    this.open = false;
    this.seqs.clear();
  }

  /** One request for one sequence; a context the server says is full ends the turn as 'max_seq'. */
  private async turn(st: SeqState, o: TurnOptions): Promise<{ tokens: number[]; logp?: number[]; finishReason: FinishReason; pending: PendingTurn }> {
    const empty = (finishReason: FinishReason) => ({ tokens: [], finishReason, pending: { message: { role: 'assistant' as const, content: '' }, textCalls: 0, callIds: [] } });
    if (o.maxNewTokens === 0) return empty('max_new_tokens');
    const body: ChatCompletionRequest = { model: this.model, ...this.protocol.request(st, o) };
    let answer: unknown;
    try {
      answer = await this.transport.postJson('/chat/completions', body);
    } catch (err) {
      if (isContextFull(err)) return empty('max_seq');
      throw err;
    }
    return this.protocol.result(st, firstChoice(answer, this.transport.baseURL + '/chat/completions', this.model), o);
  }

  private keep(st: SeqState): number {
    const id = this.nextId++;
    this.seqs.set(id, st);
    return id;
  }

  private state(id: number, name: string): SeqState {
    const st = this.seqs.get(id);
    if (!st) throw new RangeError(`unknown or released sequence id ${String(id)} (\`${name}\`)`);
    return st;
  }

  private alive(): void {
    if (!this.open) throw new HttpSessionError('GenerationSession: the session was disposed');
    if (this.transport.disposed) throw new HttpSessionError('GenerationSession: the policy was disposed');
  }
}

function checkIds(v: ArrayLike<number> | undefined, name: string): number[] {
  if (!v || typeof v !== 'object' || typeof v.length !== 'number') throw new TypeError(`Expected an Array of token ids for \`${name}\``);
  const out = Array.from(v);
  out.forEach((t, k) => {
    if (!Number.isInteger(t) || t < 0 || t >= VOCAB_SIZE) throw new RangeError(`Expected token ids in [0, ${VOCAB_SIZE}) for \`${name}\` but received ${t} at ${k}`);
  });
  return out;
}

function turnOptions(o: GenerateOptions): TurnOptions {
  if (o === null || typeof o !== 'object') throw new TypeError('Expected an object for `options`');
  const maxNewTokens = o.maxNewTokens ?? 256;
  if (!Number.isSafeInteger(maxNewTokens) || maxNewTokens < 0) throw new RangeError(`Expected an integer >= 0 for \`options.maxNewTokens\` but received ${String(o.maxNewTokens)}`);
  const temperature = o.temperature ?? 1;
  if (typeof temperature !== 'number' || !(temperature >= 0) || !Number.isFinite(temperature)) throw new RangeError(`Expected a number >= 0 for \`options.temperature\` but received ${String(o.temperature)}`);
  const topP = o.topP ?? 1;
  if (typeof topP !== 'number' || !(topP > 0 && topP <= 1)) throw new RangeError(`Expected a number in (0, 1] for \`options.topP\` but received ${String(o.topP)}`);
  if (o.stopStrings?.length) throw new RangeError('`options.stopStrings` is not supported by HttpPolicy (stopTokens are)');
  const stopTokens = checkIds(o.stopTokens ?? [...DEFAULT_STOP_TOKENS], 'options.stopTokens');
  const bannedTokens = checkIds(o.bannedTokens ?? [...DEFAULT_BANNED_TOKENS], 'options.bannedTokens');
  return { maxNewTokens, temperature, topP, stopTokens, bannedTokens, toolsAllowed: !bannedTokens.includes(TOOL_CALL_ID) };
}
