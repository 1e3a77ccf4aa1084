// QwenEnvSession: medgym's GenerationSession over a Qwen session, the translation that lets rollout()
// and evaluate() run a pretrained Qwen2-VL / Qwen2.5-VL (QwenEnvPolicy, ./env_policy.ts) on the env.
// The env speaks medgym's token space (byte-level ids, SPEC §3 texts, views as ViewImage); the model speaks Qwen's (its chat template, BPE ids, <|image_pad|> runs).
// Each GenerationSession call is translated:
//   add()      env prompt ids → decode → parseEnvPrompt → [system QWEN_SYSTEM_PROMPT, user [images, question]]
//              → the model's chat template with the env's tools → encodeChat (pad runs = merged tokens).
//   generate() Qwen ids → Qwen text → qwenToEnvAction → medgym ids of the action (what env.step takes).
//   append()   env response ids → parseEnvResponse → tool messages; the whole conversation is rendered
//              again (the assistant turn = the model's own text, verbatim) and only the suffix beyond
//              what the Qwen session holds is encoded and appended (the prefix is checked, not assumed).
// The Qwen session keeps the KV caches; positions (M-RoPE) are its business.
//
// What has no counterpart (docs in QwenEnvPolicy): per-token log-probs of the env-space action (logp is
// all 0: the action's ids are not the ids the model sampled), stop strings, and banning medgym byte ids.
import type { AppendInput, GenerateOptions, GenerateResult, GenerationSession, SampleKey, SessionOptions, SessionSequenceInput } from '../../policy/types';
import { DEFAULT_BANNED_TOKENS, DEFAULT_STOP_TOKENS } from '../../policy';
import { fullSampleKey, type FullSampleKey } from '../../policy/sample_key';
import { BYTE_VOCAB, decode, encode, EOS_ID, SPECIAL_TOKENS, VOCAB_SIZE } from '../../tokenizer';
import type { ViewImage } from '../../tools/image';
import { encodeChat, renderChat, type QwenContentPart, type QwenMessage, type QwenTool, type RenderOptions } from './chat';
import type { QwenGenerated, QwenGenerateOptions, QwenLoadOptions, QwenSequence } from './engine';
import { parseEnvPrompt, parseEnvResponse, qwenToEnvAction } from './protocol';
import type { QwenSampleKey } from './session';
import { QWEN_TOKEN_STRINGS, type QwenTokenizer } from './tokenizer';
import { qwenAlwaysBanned, qwenEndIds } from './turn_ids';

export { DEFAULT_QWEN_MAX_SEQ } from './load_dir';

export interface QwenEnvPolicyOptions {
  /**
   * Side of the env's square views (MedGymOptions.viewSize; the env's default is 64). imageTokens is
   * computed from it: the merged tokens of such a view after smart_resize, plus <|vision_start|> and
   * <|vision_end|>.
   */
  viewSize?: number;
  /** Longest Qwen sequence (positions). Default: min(max_position_embeddings of config.json, 32768); 32768 when unknown. */
  maxSeq?: number;
  /** System text (default QWEN_SYSTEM_PROMPT). The env's own system text is not used: it describes medgym's token protocol. */
  systemPrompt?: string;
  /** Tools shown to the model (default: the env's, toQwenTools(toolJsonSchemas())). */
  tools?: QwenTool[];
  /** Passed to renderChat: `extra` template variables (e.g. enable_thinking: false), `support` (override detection), `template` (instead of the tokenizer's). */
  render?: QwenRenderChoices;
  /** QwenEnvPolicy.load only: how the weights are loaded (dtype, maxParams). */
  load?: QwenLoadOptions;
}

/** A rendering the Qwen session holds does not prefix the conversation rendered again (append() cannot go on). */
export class QwenEnvProtocolError extends Error {
  override name = 'QwenEnvProtocolError';
}

/** What the adapter needs of a Qwen generation session: QwenSession implements it (tests may script one). */
export interface QwenSessionLike {
  add(seqs: QwenSequence[], sampleKeys?: QwenSampleKey[]): Promise<number[]>;
  append(items: { id: number; input: QwenSequence }[]): Promise<void>;
  fork(id: number, n: number, sampleKeys?: QwenSampleKey[]): Promise<number[]>;
  generate(ids: number[], options?: QwenGenerateOptions): Promise<QwenGenerated[]>;
  release(ids: number[]): void;
  dispose(): void;
}

/** Everything the translation needs, fixed per policy. */
export interface QwenEnvSpec {
  tokenizer: QwenTokenizer;
  /** The model's vocabulary (logit rows); ids from tokenizer.vocabSize up to it have no text and are never sampled. */
  vocabSize: number;
  /** <|image_pad|> count of a view: the merged tokens the vision tower makes of it. */
  padCount: (view: ViewImage) => number;
  maxSeq: number;
  systemPrompt: string;
  tools: QwenTool[];
  render: QwenRenderChoices;
}

export type QwenRenderChoices = Pick<RenderOptions, 'support' | 'extra'> & { template?: string };

type FullKey = FullSampleKey;

interface SeqState {
  key: FullKey;
  /** The conversation so far (the last assistant turn is added by append()). */
  messages: QwenMessage[];
  /** The text the Qwen session holds: the last rendering plus the text generated since (one <|image_pad|> per image). */
  held: string;
  /** Qwen ids the session holds. */
  length: number;
  /** Qwen text generated since the last add/append: the pending assistant turn. */
  pending?: string;
  /** Medgym-space tokens: the env's prompt, the actions returned, the env's responses. */
  envTokens: number[];
  /** The context is full: the next generate() returns nothing with finishReason 'max_seq'. */
  full: boolean;
}

export const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const countPads = (s: string): number => s.split(QWEN_TOKEN_STRINGS.imagePad).length - 1;

/**
 * medgym's GenerationSession over a Qwen session. Sequence handles are the Qwen session's. Calls are
 * expected one at a time (as rollout() makes them).
 */
export class QwenEnvSession implements GenerationSession {
  private readonly seqs = new Map<number, SeqState>();
  private added = 0;
  private readonly seed: number;
  /** Qwen ids that end a turn: <|im_end|>, <|endoftext|> and the eos ids of generation_config / tokenizer_config. */
  readonly endIds: readonly number[];
  /** Ids never sampled whatever the call asks: control tokens other than the end ids, and ids without text. */
  readonly alwaysBanned: readonly number[];

  constructor(
    private readonly spec: QwenEnvSpec,
    private session: QwenSessionLike | undefined,
    options: SessionOptions = {},
  ) {
    this.seed = options.seed ?? 0;
    this.endIds = qwenEndIds(spec.tokenizer);
    this.alwaysBanned = qwenAlwaysBanned(spec.tokenizer, spec.vocabSize, this.endIds);
  }

  private get s(): QwenSessionLike {
    if (!this.session) throw new Error('QwenEnvSession: the session was disposed');
    return this.session;
  }

  private state(id: number): SeqState {
    const st = this.seqs.get(id);
    if (!st) throw new RangeError(`QwenEnvSession: unknown or released sequence id ${id}`);
    return st;
  }

  private render(messages: QwenMessage[]) {
    return renderChat(this.spec.tokenizer, messages, { tools: this.spec.tools, addGenerationPrompt: true, ...this.spec.render });
  }

  async add(seqs: SessionSequenceInput[]): Promise<number[]> {
    if (!Array.isArray(seqs)) throw new TypeError('Expected an Array for `seqs`');
    if (seqs.length === 0) return [];
    const built = seqs.map((q, i) => {
      const images = q.images ?? [];
      const p = parseEnvPrompt(decode(q.tokens));
      if (p.images !== images.length) throw new RangeError(`seqs[${i}]: the prompt holds ${p.images} <|image|> but ${images.length} image(s) came with it`);
      const messages: QwenMessage[] = [
        { role: 'system', content: this.spec.systemPrompt },
        { role: 'user', content: [...images.map((): QwenContentPart => ({ type: 'image' })), { type: 'text', text: p.question }] },
      ];
      const rendered = this.render(messages);
      const enc = encodeChat(this.spec.tokenizer, rendered, images.map((v) => this.spec.padCount(v)));
      if (enc.ids.length > this.spec.maxSeq) throw new RangeError(`seqs[${i}]: the prompt takes ${enc.ids.length} Qwen positions, the context holds ${this.spec.maxSeq}`);
      const key = fullSampleKey(q.key, { seed: this.seed, step: 0, promptIndex: this.added + i, sampleIndex: 0 }, `seqs[${i}].key`);
      return { messages, held: rendered.text, ids: enc.ids, images, key, envTokens: Array.from(q.tokens) };
    });
    const ids = await this.s.add(
      built.map((b) => ({ ids: b.ids, images: b.images })),
      built.map((b) => b.key),
    );
    this.added += seqs.length;
    ids.forEach((id, i) => {
      const b = built[i];
      this.seqs.set(id, { key: b.key, messages: b.messages, held: b.held, length: b.ids.length, envTokens: b.envTokens, full: false });
    });
    return ids;
  }

  async append(items: { id: number; input: AppendInput }[]): Promise<void> {
    if (!Array.isArray(items)) throw new TypeError('Expected an Array for `items`');
    const out: { id: number; input: QwenSequence }[] = [];
    const updates: (() => void)[] = [];
    for (const [i, { id, input }] of items.entries()) {
      const st = this.state(id);
      const images = input.images ?? [];
      const tokens = Array.from(input.tokens);
      if (st.pending === undefined) throw new QwenEnvProtocolError(`items[${i}]: append() takes the env's response to an action, and sequence ${id} has generated nothing since it was added or last appended to`);
      const responses = parseEnvResponse(decode(tokens));
      const nImages = responses.reduce((a, r) => a + r.images, 0);
      if (nImages !== images.length) throw new RangeError(`items[${i}]: the response holds ${nImages} <|image|> but ${images.length} image(s) came with it`);
      const messages: QwenMessage[] = [...st.messages, { role: 'assistant', content: this.assistantContent(st.pending) }];
      let next = 0;
      for (const r of responses) {
        const views = images.slice(next, next + r.images);
        next += r.images;
        messages.push({ role: 'tool', content: views.length ? [{ type: 'text', text: r.text }, ...views.map((): QwenContentPart => ({ type: 'image' }))] : r.text });
      }
      const rendered = this.render(messages);
      const suffix = this.suffix(st.held, rendered.text, id);
      if (countPads(suffix) !== images.length) throw new QwenEnvProtocolError(`sequence ${id}: the rendered suffix holds ${countPads(suffix)} <|image_pad|> for ${images.length} new image(s)`);
      const enc = encodeChat(this.spec.tokenizer, { text: suffix, images: images.length }, images.map((v) => this.spec.padCount(v)));
      if (st.length + enc.ids.length > this.spec.maxSeq) {
        // Not appended: the model's context cannot hold it. The next generate() says so ('max_seq').
        updates.push(() => {
          st.full = true;
          st.envTokens.push(...tokens);
        });
        continue;
      }
      out.push({ id, input: { ids: enc.ids, images } });
      updates.push(() => {
        st.messages = messages;
        st.held = rendered.text;
        st.pending = undefined;
        st.length += enc.ids.length;
        st.envTokens.push(...tokens);
      });
    }
    if (out.length) await this.s.append(out);
    for (const u of updates) u();
  }

  async fork(id: number, n: number, keys?: SampleKey[]): Promise<number[]> {
    const parent = this.state(id);
    if (!isInt(n) || n < 1 || n > 4096) throw new RangeError(`Expected an integer in [1, 4096] for \`n\` but received ${String(n)}`);
    if (keys !== undefined && (!Array.isArray(keys) || keys.length !== n)) throw new RangeError(`Expected an Array of ${n} keys for \`keys\` (one per new sequence)`);
    const full = Array.from({ length: n }, (_, j) => fullSampleKey(keys?.[j], { ...parent.key, sampleIndex: j }, `keys[${j}]`));
    const ids = await this.s.fork(id, n, full);
    ids.forEach((c, j) => this.seqs.set(c, { ...parent, key: full[j], messages: [...parent.messages], envTokens: [...parent.envTokens] }));
    return ids;
  }

  async generate(ids: number[], options: GenerateOptions = {}): Promise<GenerateResult[]> {
    if (!Array.isArray(ids)) throw new TypeError('Expected an Array of sequence ids for `ids`');
    const st = ids.map((id) => this.state(id));
    const want = options.maxNewTokens ?? 256;
    if (!isInt(want) || want < 0) throw new RangeError(`Expected an integer >= 0 for \`maxNewTokens\` but received ${String(want)}`);
    if (options.stopStrings?.length) throw new RangeError('QwenEnvSession: stopStrings are not supported (stop tokens are)');
    const base: QwenGenerateOptions = { temperature: options.temperature ?? 1, topP: options.topP ?? 1, stopTokens: this.stopTokens(options.stopTokens), bannedTokens: this.bannedTokens(options.bannedTokens) };
    // One Qwen call per distinct budget: a sequence near the end of the context gets what is left of it.
    const budget = st.map((s) => (s.full ? 0 : Math.min(want, this.spec.maxSeq - s.length)));
    const gens: (QwenGenerated | undefined)[] = new Array(ids.length);
    for (const b of [...new Set(budget)].filter((b) => b > 0)) {
      const idx = budget.map((x, i) => (x === b ? i : -1)).filter((i) => i >= 0);
      const out = await this.s.generate(
        idx.map((i) => ids[i]),
        { ...base, maxNewTokens: b },
      );
      idx.forEach((i, k) => (gens[i] = out[k]));
    }
    return ids.map((id, i) => {
      const s = st[i];
      const g = gens[i];
      const qTokens = g ? Array.from(g.tokens) : [];
      const qText = this.spec.tokenizer.decode(qTokens);
      s.length += qTokens.length;
      s.held += qText;
      s.pending = (s.pending ?? '') + qText;
      const action = qwenToEnvAction(qText).action;
      const tokens = encode(action);
      s.envTokens.push(...tokens);
      const atEnd = budget[i] < want && (g === undefined || (g.finishReason === 'max_new_tokens' && qTokens.length >= budget[i]));
      const finishReason = g?.finishReason === 'stop_token' ? 'stop_token' : atEnd ? 'max_seq' : 'max_new_tokens';
      if (finishReason === 'max_seq') s.full = true;
      return { id, tokens: Int32Array.from(tokens), text: decode(tokens), logp: new Float32Array(tokens.length), finishReason };
    });
  }

  /** Every token of a sequence so far in medgym's space: the env's prompt, the actions returned, the env's responses. */
  tokens(id: number): Int32Array {
    return Int32Array.from(this.state(id).envTokens);
  }

  /**
   * The conversation as the Qwen session holds it (one <|image_pad|> per image), for logs and tests: a
   * turn the model ended with another end token (<|endoftext|>) shows the template's <|im_end|> there.
   */
  qwenText(id: number): string {
    return this.state(id).held;
  }

  release(ids: number[]): void {
    for (const id of ids) this.state(id);
    this.s.release(ids);
    for (const id of ids) this.seqs.delete(id);
  }

  dispose(): void {
    this.session?.dispose();
    this.session = undefined;
    this.seqs.clear();
  }

  /** Medgym stop ids → Qwen ids: the end ids always; a medgym special spelled as a Qwen added token (</tool_call>) → that token. */
  private stopTokens(stop: readonly number[] = DEFAULT_STOP_TOKENS): number[] {
    const out = new Set(this.endIds);
    for (const id of this.checkIds(stop, 'stopTokens')) {
      if (id === EOS_ID) continue;
      const q = this.addedFor(id);
      if (q !== undefined) out.add(q);
    }
    return [...out];
  }

  /** Medgym banned ids → Qwen ids: alwaysBanned, plus the Qwen added token spelled as a banned medgym special (<tool_call> when tools are banned). */
  private bannedTokens(banned: readonly number[] = DEFAULT_BANNED_TOKENS): number[] {
    const out = new Set(this.alwaysBanned);
    for (const id of this.checkIds(banned, 'bannedTokens')) {
      const q = this.addedFor(id);
      if (q !== undefined) out.add(q);
    }
    return [...out];
  }

  private checkIds(ids: readonly number[], name: string): readonly number[] {
    if (!Array.isArray(ids)) throw new TypeError(`Expected an Array of token ids for \`${name}\``);
    for (const x of ids) if (!Number.isInteger(x) || x < 0 || x >= VOCAB_SIZE) throw new RangeError(`Expected token ids in [0, ${VOCAB_SIZE}) for \`${name}\` but received ${x}`);
    return ids;
  }

  /** The Qwen added token with the same string as medgym special `id` (bytes have none). */
  private addedFor(id: number): number | undefined {
    if (id < BYTE_VOCAB) return undefined;
    const s = SPECIAL_TOKENS[id - BYTE_VOCAB];
    const t = this.spec.tokenizer.addedTokens.find((a) => a.content === s);
    return t && t.id < this.spec.vocabSize ? t.id : undefined;
  }

  /** The assistant turn as the template gets it: the generated text without the end token it stopped at. */
  private assistantContent(text: string): string {
    for (const e of this.endStrings()) if (text.endsWith(e)) return text.slice(0, text.length - e.length);
    return text;
  }

  private endStrings(): string[] {
    return this.endIds.map((id) => this.spec.tokenizer.tokenString(id)).filter((s): s is string => !!s);
  }

  /**
   * What `rendered` adds to `held`. `held` must prefix it; one exception: a turn that ended at another
   * end token (<|endoftext|>) holds that token where the template writes <|im_end|> — the KV cache
   * cannot drop it, so it stands for the turn's end and the suffix starts after the template's <|im_end|>.
   */
  private suffix(held: string, rendered: string, id: number): string {
    if (rendered.startsWith(held)) return rendered.slice(held.length);
    const imEnd = QWEN_TOKEN_STRINGS.imEnd;
    for (const e of this.endStrings()) {
      if (e === imEnd || !held.endsWith(e)) continue;
      const canonical = held.slice(0, held.length - e.length) + imEnd;
      if (rendered.startsWith(canonical)) return rendered.slice(canonical.length);
    }
    let k = 0;
    while (k < held.length && held[k] === rendered[k]) k++;
    const show = (s: string): string => JSON.stringify(s.slice(Math.max(0, k - 40), k + 40));
    throw new QwenEnvProtocolError(
      `sequence ${id}: the conversation rendered again differs from what the Qwen session holds at character ${k} ` +
        `(held ${show(held)}, rendered ${show(rendered)}); the chat template must render earlier turns unchanged (e.g. not rewrite the assistant's text)`,
    );
  }
}
