// A generation session over a NativePolicy's KV caches (SPEC §7 streams per sequence): add, append,
// fork, generate, release. Calls go through the policy's queue, so they never overlap its other work.
import type { NativePolicyFunctions, SessionHandle } from '../native/policy';
import { BOS_ID, decode, EOS_ID, IMAGE_ID, PAD_ID, TOOL_CALL_END_ID, TOOL_RESPONSE_ID, VOCAB_SIZE } from '../tokenizer';
import { packBatch } from './batch';
import type { AppendInput, GenerateOptions, GenerateResult, GenerationSession, PolicyConfig, SampleKey, SessionSequenceInput } from './types';

/** Never sampled unless a bannedTokens list replaces this one (<|image|> is never sampled at all). */
export const DEFAULT_BANNED_TOKENS: readonly number[] = [BOS_ID, PAD_ID, IMAGE_ID, TOOL_RESPONSE_ID];
/** End a generated segment: <|eos|> and </tool_call> (SPEC §3). */
export const DEFAULT_STOP_TOKENS: readonly number[] = [EOS_ID, TOOL_CALL_END_ID];

/** What a session needs of the policy that created it. */
export interface SessionOwner {
  readonly config: PolicyConfig;
  /** Called by dispose(). */
  forgetSession(s: NativeGenerationSession): void;
}
type FullKey = Required<SampleKey>;
const KEY_FIELDS = ['seed', 'step', 'promptIndex', 'sampleIndex'] as const;

export class NativeGenerationSession implements GenerationSession {
  private handle: SessionHandle | null;
  private added = 0;
  /** Stream key of each live sequence (fork's defaults). */
  private keys = new Map<number, FullKey>();
  constructor(
    private readonly policy: SessionOwner,
    private readonly fns: NativePolicyFunctions,
    handle: SessionHandle,
    private readonly seed: number,
    private readonly enqueue: <T>(fn: () => Promise<T>) => Promise<T>,
  ) {
    this.handle = handle;
  }

  private get h(): SessionHandle {
    if (!this.handle) throw new Error('GenerationSession: the session was disposed');
    return this.handle;
  }

  add(seqs: SessionSequenceInput[]): Promise<number[]> {
    return this.enqueue(async () => {
      const raw = packBatch(this.policy.config, seqs, 'seqs', false);
      const key = (i: number, k: keyof SampleKey, dflt: number): number => {
        const v = seqs[i].key?.[k] ?? dflt;
        if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`Expected a non-negative integer for \`seqs[${i}].key.${k}\` but received ${v}`);
        return v;
      };
      const n = seqs.length;
      const seeds = Array.from({ length: n }, (_, i) => key(i, 'seed', this.seed));
      const steps = Array.from({ length: n }, (_, i) => key(i, 'step', 0));
      const promptIndices = Array.from({ length: n }, (_, i) => key(i, 'promptIndex', this.added + i));
      const sampleIndices = Array.from({ length: n }, (_, i) => key(i, 'sampleIndex', 0));
      const counters = Array.from({ length: n }, (_, i) => key(i, 'counter', 0));
      const ids = await this.fns.sessionAddAsync({ session: this.h, ...raw, seeds, steps, promptIndices, sampleIndices, counters });
      this.added += n; // handles are assigned 0, 1, 2, ... in add order (calls are serialized)
      ids.forEach((id, i) => this.keys.set(id, { seed: seeds[i], step: steps[i], promptIndex: promptIndices[i], sampleIndex: sampleIndices[i], counter: counters[i] }));
      return ids;
    });
  }

  append(items: { id: number; input: AppendInput }[]): Promise<void> {
    return this.enqueue(async () => {
      if (!Array.isArray(items) || items.length === 0) throw new RangeError('Expected a non-empty Array for `items`');
      const raw = packBatch(this.policy.config, items.map((it) => it.input), 'items[].input', false);
      const ids = Int32Array.from(items.map((it) => it.id));
      await this.fns.sessionAppendAsync({ session: this.h, ...raw, ids });
    });
  }

  fork(id: number, n: number, keys?: SampleKey[]): Promise<number[]> {
    return this.enqueue(async () => {
      if (!Number.isSafeInteger(id) || id < 0) throw new RangeError(`Expected a sequence id (a non-negative integer) for \`id\` but received ${String(id)}`);
      const parent = this.keys.get(id);
      if (!parent) throw new RangeError(`unknown or released sequence id ${id} (\`id\`)`);
      if (!Number.isSafeInteger(n) || n < 1 || n > 4096) throw new RangeError(`Expected an integer in [1, 4096] for \`n\` but received ${String(n)}`);
      if (keys !== undefined && (!Array.isArray(keys) || keys.length !== n)) throw new RangeError(`Expected an Array of ${n} keys for \`keys\` (one per new sequence)`);
      const full: FullKey[] = Array.from({ length: n }, (_, j) => {
        const k = keys?.[j];
        if (k !== undefined && (k === null || typeof k !== 'object')) throw new TypeError(`Expected an object for \`keys[${j}]\``);
        const out = { ...parent, sampleIndex: j };
        for (const f of KEY_FIELDS) {
          const v = k?.[f];
          if (v === undefined) continue;
          if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`Expected a non-negative integer for \`keys[${j}].${f}\` but received ${String(v)}`);
          out[f] = v;
        }
        return out;
      });
      const ids = await this.fns.sessionForkAsync({
        session: this.h,
        id,
        seeds: full.map((k) => k.seed),
        steps: full.map((k) => k.step),
        promptIndices: full.map((k) => k.promptIndex),
        sampleIndices: full.map((k) => k.sampleIndex),
      });
      ids.forEach((child, j) => this.keys.set(child, full[j]));
      return ids;
    });
  }

  generate(ids: number[], options: GenerateOptions = {}): Promise<GenerateResult[]> {
    return this.enqueue(async () => {
      if (!Array.isArray(ids)) throw new TypeError('Expected an Array of sequence ids for `ids`');
      const list = (v: number[] | undefined, d: readonly number[], name: string): Int32Array => {
        const a = v ?? d;
        if (!Array.isArray(a) && !(a as unknown as Int32Array).length && a !== d) throw new TypeError(`Expected an Array of token ids for \`${name}\``);
        for (const x of a) if (!Number.isInteger(x) || x < 0 || x >= VOCAB_SIZE) throw new RangeError(`Expected token ids in [0, ${VOCAB_SIZE}) for \`${name}\` but received ${x}`);
        return Int32Array.from(a);
      };
      if (options.stopStrings !== undefined && (!Array.isArray(options.stopStrings) || options.stopStrings.some((s) => typeof s !== 'string'))) {
        throw new TypeError('Expected an Array of strings for `stopStrings`');
      }
      const out = await this.fns.sessionGenerateAsync({
        session: this.h,
        ids: Int32Array.from(ids),
        maxNewTokens: options.maxNewTokens ?? 256,
        temperature: options.temperature ?? 1,
        topP: options.topP ?? 1,
        stopTokens: list(options.stopTokens, DEFAULT_STOP_TOKENS, 'stopTokens'),
        stopStrings: options.stopStrings ?? [],
        bannedTokens: list(options.bannedTokens, DEFAULT_BANNED_TOKENS, 'bannedTokens'),
      });
      return out.map((o) => ({ ...o, text: decode(o.tokens) }));
    });
  }

  tokens(id: number): Int32Array {
    return this.fns.sessionTokens({ session: this.h, ids: Int32Array.from([id]) });
  }

  release(ids: number[]): void {
    this.fns.sessionRelease({ session: this.h, ids: Int32Array.from(ids) });
    for (const id of ids) this.keys.delete(id);
  }

  dispose(): void {
    if (!this.handle) return;
    this.fns.sessionDispose({ session: this.handle });
    this.handle = null;
    this.policy.forgetSession(this);
  }
}

