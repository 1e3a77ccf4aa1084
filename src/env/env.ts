// MedGymEnv: one episode = one image and question; the policy's segments come in through step(),
// tool responses and their views go out. Gymnasium's reset/step names, async because tools run on
// sharp's thread pool. Never throws on a policy's output; throws only on caller bugs.
import { SynthDataset } from '../data/synth';
import { Stream } from '../data/rng';
import type { Dataset, VqaItem } from '../data/types';
import { composeRewards, gradeAnswer, type EpisodeSummary, type RewardBreakdown } from '../rewards';
import { decode, encode } from '../tokenizer';
import { executeToolCall } from '../tools/execute';
import type { Box, ViewImage } from '../tools/image';
import { toolJsonSchemas } from '../tools/schemas';
import { ToolSession } from '../tools/session';
import { makeCaches, type EnvCaches } from './cache';
import { buildPrompt, DEFAULT_SYSTEM_PROMPT, LETTERS, parseAssistant, toolResponseText } from './protocol';
import type { GroundTruth, MedGymOptions, Observation, ResetOptions, StepInfo, StepResult, ToolCallRecord, TruncationReason } from './types';

const posInt = (name: string, v: number): number => {
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`Expected positive integer for ${name} but received ${v}`);
  return v;
};

export class MedGymEnv {
  /** The registry id the env was made from ('MedGym-custom' when constructed directly). */
  readonly id: string;
  /** The task source: options.dataset, or the synthetic generator. */
  readonly dataset: Dataset;
  /** The options in force, defaults filled in. */
  readonly options: Readonly<Required<Omit<MedGymOptions, 'dataset' | 'synth' | 'rewards' | 'generatorWorkers'>>>;
  /** JSON Schema of the tools, for external policies' function-calling prompts. */
  readonly toolSchemas = toolJsonSchemas();
  private readonly reward: ReturnType<typeof composeRewards>;
  private seed = 0;
  private episode = -1;
  private item: VqaItem | undefined;
  private session: ToolSession | undefined;
  private info: StepInfo | undefined;
  private zoomBoxes: Box[] = [];
  /** Tool calls of this episode (name + canonical arguments) → the turn of their first use. */
  private calls = new Map<string, number>();
  private done = true;
  private readonly caches: EnvCaches;
  // One call at a time: a step awaiting a tool must not interleave with another step or a reset.
  private busy = false;

  /** `caches` lets several envs (a VectorEnv's) share items and views; by default each env has its own. */
  constructor(options: MedGymOptions = {}, id = 'MedGym-custom', caches?: EnvCaches) {
    this.id = id;
    this.dataset = options.dataset ?? new SynthDataset(options.synth, { workers: options.generatorWorkers ?? 0 });
    this.options = {
      viewSize: posInt('viewSize', options.viewSize ?? 64),
      viewChannels: options.viewChannels ?? 3,
      resizeKernel: options.resizeKernel ?? 'lanczos3',
      systemPrompt: options.systemPrompt ?? DEFAULT_SYSTEM_PROMPT,
      maxTurns: posInt('maxTurns', options.maxTurns ?? 6),
      maxNewTokensPerTurn: posInt('maxNewTokensPerTurn', options.maxNewTokensPerTurn ?? 512),
      maxTotalTokens: posInt('maxTotalTokens', options.maxTotalTokens ?? 8192),
      imageTokens: posInt('imageTokens', options.imageTokens ?? 1),
      maxToolCallsPerTurn: posInt('maxToolCallsPerTurn', options.maxToolCallsPerTurn ?? 4),
      revealGroundTruth: options.revealGroundTruth ?? false,
      requireTool: options.requireTool ?? false,
      itemCacheSize: options.itemCacheSize ?? 64,
      viewCacheSize: options.viewCacheSize ?? 1024,
    };
    this.caches = caches ?? makeCaches(this.options.itemCacheSize, this.options.viewCacheSize);
    if (this.options.viewChannels !== 1 && this.options.viewChannels !== 3) {
      throw new RangeError(`Expected 1 or 3 for viewChannels but received ${String(this.options.viewChannels)}`);
    }
    this.reward = composeRewards(options.rewards);
  }

  /** Starts an episode. With a seed the env's episode stream restarts; without, it continues. */
  async reset(args: { seed?: number; options?: ResetOptions } = {}): Promise<{ observation: Observation; info: StepInfo }> {
    return this.exclusive('reset', () => this.doReset(args));
  }

  /** One assistant segment (text, or the token ids the policy sampled). */
  async step(action: string | ArrayLike<number>): Promise<StepResult> {
    return this.exclusive('step', () => this.doStep(action));
  }

  private async exclusive<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.busy) throw new Error(`${what}() called while another reset() or step() of this env is still running: await it first`);
    this.busy = true;
    try {
      return await fn();
    } finally {
      this.busy = false;
    }
  }

  private async doReset(args: { seed?: number; options?: ResetOptions }): Promise<{ observation: Observation; info: StepInfo }> {
    if (args.seed !== undefined) {
      if (!Number.isSafeInteger(args.seed)) throw new RangeError(`Expected integer seed but received ${args.seed}`);
      this.seed = args.seed;
      this.episode = 0;
    } else this.episode++;
    const size = this.dataset.size;
    let index = args.options?.index;
    if (index === undefined) {
      const u = new Stream(this.seed, this.episode, 0xe915).u32();
      index = Number.isFinite(size) ? u % size : u;
    }
    let pending = this.caches.items.get(index);
    if (!pending) {
      pending = this.dataset.get(index);
      this.caches.items.set(index, pending);
      pending.catch(() => undefined); // a failed load is reported below, not as an unhandled rejection
    }
    let item: VqaItem;
    try {
      item = await pending;
    } catch (err) {
      this.caches.items.delete(index);
      throw err;
    }
    this.item = item;
    this.session = new ToolSession(item.image, {
      viewSize: this.options.viewSize,
      viewChannels: this.options.viewChannels,
      kernel: this.options.resizeKernel,
      cache: this.caches.views,
      cacheKey: item.id,
    });
    this.zoomBoxes = [];
    this.calls.clear();
    this.done = false;
    const text = buildPrompt(this.options.systemPrompt, item.question, item.options, item.image.width, item.image.height);
    const images = [await this.session.view()];
    const tokens = encode(text);
    this.info = {
      taskId: item.id,
      modality: item.modality,
      questionType: item.questionType,
      options: [...item.options],
      turn: 0,
      totalTokens: this.count(tokens, images.length),
      toolCalls: [],
      formatErrors: [],
      groundTruth: this.options.revealGroundTruth ? this.groundTruth() : undefined,
    };
    return { observation: this.obs(text, tokens, images), info: this.snapshot() };
  }

  private async doStep(action: string | ArrayLike<number>): Promise<StepResult> {
    if (!this.info || !this.session || !this.item) throw new Error('step() called before reset(): call reset() first');
    if (this.done) throw new Error('step() called on a finished episode: call reset() to start the next one');
    const info = this.info;
    const text = typeof action === 'string' ? action : decode(action);
    const nTokens = typeof action === 'string' ? encode(action).length : action.length;
    info.turn++;
    info.totalTokens += nTokens;
    if (nTokens > this.options.maxNewTokensPerTurn) return this.finish('', 'max_new_tokens');
    if (info.totalTokens > this.options.maxTotalTokens) return this.finish('', 'max_total_tokens');

    const seg = parseAssistant(text);
    for (const e of seg.formatErrors) info.formatErrors.push(`turn ${info.turn}: ${e}`);
    if (seg.answer !== undefined) {
      if (this.options.requireTool && !info.toolCalls.some((c) => c.ok)) info.formatErrors.push(`turn ${info.turn}: answered before any tool output (this task requires a tool call first)`);
      return this.finish(seg.answer, undefined);
    }
    if (info.turn >= this.options.maxTurns) return this.finish('', 'max_turns');

    let response = '';
    const images: ViewImage[] = [];
    if (seg.calls.length === 0) {
      response = toolResponseText('error: no tool call or answer found; call a tool with <tool_call>{"name": ..., "arguments": {...}}</tool_call> or answer with <answer>X</answer>', 0);
    }
    for (const [k, pc] of seg.calls.entries()) {
      let rec: ToolCallRecord;
      let body: string;
      let views: ViewImage[] = [];
      if (k >= this.options.maxToolCallsPerTurn) {
        const error = `too many tool calls in one turn (at most ${this.options.maxToolCallsPerTurn})`;
        rec = { turn: info.turn, name: '', ok: false, error, boxes: [] };
        body = `error: ${error}`;
      } else if (!pc.call) {
        rec = { turn: info.turn, name: '', ok: false, error: pc.error, boxes: [] };
        body = `error: ${pc.error}`;
      } else {
        // Tools are pure functions of the image: the same call again returns what the context already
        // holds, so it only pads the episode (format error, executed all the same).
        const key = callKey(pc.call);
        const first = this.calls.get(key);
        if (first !== undefined) info.formatErrors.push(`turn ${info.turn}: repeated tool call (the same as in turn ${first})`);
        else this.calls.set(key, info.turn);
        const r = await executeToolCall(this.session, pc.call);
        rec = { turn: info.turn, name: r.name, ok: r.ok, error: r.error, boxes: r.boxes };
        body = r.text;
        views = r.images;
        if (r.ok && (r.name === 'zoom_in' || r.name === 'crop_multi')) this.zoomBoxes.push(...r.boxes);
      }
      info.toolCalls.push(rec);
      images.push(...views);
      const block = toolResponseText(body, views.length);
      // One \nassistant: at the end of the turn, after the last response block.
      response += k < seg.calls.length - 1 ? block.slice(0, block.length - '\nassistant: '.length) : block;
    }
    const tokens = encode(response);
    const added = this.count(tokens, images.length);
    if (info.totalTokens + added >= this.options.maxTotalTokens) return this.finish('', 'max_total_tokens');
    info.totalTokens += added;
    return { observation: this.obs(response, tokens, images), reward: 0, terminated: false, truncated: false, info: this.snapshot() };
  }

  close(): void {
    this.done = true;
  }

  /** The item of the current episode (for tools built on top of the env; policies should not peek). */
  currentItem(): VqaItem | undefined {
    return this.item;
  }

  private finish(answer: string, reason: TruncationReason | undefined): StepResult {
    const info = this.info!;
    const item = this.item!;
    this.done = true;
    const graded = reason === undefined ? gradeAnswer(answer, item.options, item.answer) : undefined;
    const failed = info.toolCalls.filter((c) => !c.ok).length;
    const summary: EpisodeSummary = {
      answerStatus: graded ? graded.status : 'none',
      correct: graded?.correct ?? false,
      // A gradable answer (not empty, not several options, not too long), no format error, no failed call.
      wellFormed: graded?.status === 'ok' && info.formatErrors.length === 0 && failed === 0,
      toolCalls: info.toolCalls.length,
      toolErrors: failed,
      zoomBoxes: [...this.zoomBoxes],
      gtBox: item.box,
      truncated: reason !== undefined,
    };
    const reward: RewardBreakdown = this.reward(summary);
    info.answer = { raw: answer.slice(0, 200), status: summary.answerStatus, correct: summary.correct };
    info.truncationReason = reason;
    info.reward = reward;
    info.summary = summary;
    info.groundTruth = this.groundTruth();
    const size = { width: item.image.width, height: item.image.height };
    return {
      observation: { text: '', tokens: [], images: [], originalSize: size },
      reward: reward.total,
      terminated: reason === undefined,
      truncated: reason !== undefined,
      info: this.snapshot(),
    };
  }

  private groundTruth(): GroundTruth {
    const it = this.item!;
    const mc = typeof it.answer === 'number';
    return {
      answer: it.answer,
      letter: mc ? LETTERS[it.answer as number] : undefined,
      answerText: mc ? it.options[it.answer as number] : String(it.answer),
      box: it.box,
      window: it.window,
      meta: it.meta,
    };
  }

  private count(tokens: number[], nImages: number): number {
    return tokens.length + nImages * (this.options.imageTokens - 1);
  }

  private obs(text: string, tokens: number[], images: ViewImage[]): Observation {
    const it = this.item!;
    return { text, tokens, images, originalSize: { width: it.image.width, height: it.image.height } };
  }

  // Callers get a copy so that later steps do not rewrite an info they kept.
  private snapshot(): StepInfo {
    const i = this.info!;
    return { ...i, options: [...i.options], toolCalls: i.toolCalls.map((c) => ({ ...c, boxes: [...c.boxes] })), formatErrors: [...i.formatErrors] };
  }
}

/** A tool call as text with object keys sorted, so that the same call written twice compares equal. */
function callKey(call: { name: unknown; arguments: unknown }): string {
  const canon = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(canon) : v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon((v as Record<string, unknown>)[k])])) : v;
  return JSON.stringify([call.name, canon(call.arguments ?? {})]);
}
