// A generation session on a QwenVLModel (native/model/qwen/session.h): each sequence keeps its KV
// cache, so a multi-turn episode prefills only what each turn adds. The session tracks every
// sequence's M-RoPE state (ropeIndex) so that appended segments and sampled tokens get the positions
// a single forward over the whole sequence would give them.
import { nativeFunctions } from '../../native/runtime';
import type { NativeQwenFunctions, QwenSessionHandle, RawQwenGenParams, RawQwenKeys } from '../../native/qwen';
import type { QwenGenerated, QwenGenerateOptions, QwenSequence, QwenVLModel } from './engine';
import type { RopeState } from './rope_index';

const native = (): NativeQwenFunctions => nativeFunctions<NativeQwenFunctions>();

/** SPEC §7 stream key of a sequence (fields default to 0). */
export interface QwenSampleKey {
  seed?: number;
  step?: number;
  promptIndex?: number;
  sampleIndex?: number;
  /** Draws the stream already made (add only; default 0): the next sampled token uses draw number `counter`. Forks go on from their parent's. */
  counter?: number;
}

interface SeqState {
  rope: RopeState;
  tokens: number[];
}

function keys(ks: QwenSampleKey[]): RawQwenKeys {
  return {
    seeds: ks.map((k) => k.seed ?? 0),
    steps: ks.map((k) => k.step ?? 0),
    promptIndices: ks.map((k) => k.promptIndex ?? 0),
    sampleIndices: ks.map((k) => k.sampleIndex ?? 0),
  };
}

export function genParams(o: QwenGenerateOptions): RawQwenGenParams {
  return {
    maxNewTokens: o.maxNewTokens ?? 256,
    temperature: o.temperature ?? 1,
    topP: o.topP ?? 1,
    ...(o.stopTokens ? { stopTokens: Int32Array.from(o.stopTokens) } : {}),
    ...(o.bannedTokens ? { bannedTokens: Int32Array.from(o.bannedTokens) } : {}),
  };
}

export class QwenSession {
  private handle: QwenSessionHandle | undefined;
  private readonly seqs = new Map<number, SeqState>();

  constructor(
    readonly model: QwenVLModel,
    handle: QwenSessionHandle,
  ) {
    this.handle = handle;
  }

  private get h(): QwenSessionHandle {
    if (!this.handle) throw new Error('QwenSession: disposed');
    return this.handle;
  }

  private state(id: number): SeqState {
    const s = this.seqs.get(id);
    if (!s) throw new RangeError(`QwenSession: no sequence ${id}`);
    return s;
  }

  /** Prefills the sequences (batched); returns their handles. keys[i] defaults to {promptIndex: i}. */
  async add(seqs: QwenSequence[], sampleKeys?: QwenSampleKey[]): Promise<number[]> {
    const b = await this.model.packBatch(seqs);
    const ks: QwenSampleKey[] = sampleKeys ?? seqs.map((_, i) => ({ promptIndex: i }));
    if (ks.length !== seqs.length) throw new RangeError(`QwenSession.add: ${ks.length} keys for ${seqs.length} sequences`);
    const { states, ...batch } = b;
    const counters = ks.map((k, i) => {
      const c = k.counter ?? 0;
      if (!Number.isSafeInteger(c) || c < 0) throw new RangeError(`Expected a non-negative integer for \`sampleKeys[${i}].counter\` but received ${String(k.counter)}`);
      return c;
    });
    const ids = Array.from(await native().qwenSessionAddAsync({ session: this.h, ...batch, ...keys(ks), counters }));
    ids.forEach((id, i) => this.seqs.set(id, { rope: states[i], tokens: Array.from(seqs[i].ids) }));
    return ids;
  }

  /** Appends a segment (e.g. a tool result with new images) to each sequence; prefilled by the next generate. */
  async append(items: { id: number; input: QwenSequence }[]): Promise<void> {
    if (items.length === 0) return;
    const st = items.map((it) => this.state(it.id));
    const { states, ...batch } = await this.model.packBatch(items.map((it) => it.input), st.map((s) => s.rope));
    native().qwenSessionAppend({ session: this.h, ...batch, ids: Int32Array.from(items.map((it) => it.id)) });
    items.forEach((it, i) => {
      st[i].rope = states[i];
      st[i].tokens.push(...Array.from(it.input.ids));
    });
  }

  /** `n` sequences continuing `id` (sharing its cache blocks: no copy), sampling from `sampleKeys[j]` (default {sampleIndex: j}). */
  async fork(id: number, n: number, sampleKeys?: QwenSampleKey[]): Promise<number[]> {
    const parent = this.state(id);
    const ks = sampleKeys ?? Array.from({ length: n }, (_, j) => ({ sampleIndex: j }));
    if (ks.length !== n) throw new RangeError(`QwenSession.fork: ${ks.length} keys for ${n} children`);
    const ids = Array.from(await native().qwenSessionForkAsync({ session: this.h, id, n, ...keys(ks) }));
    for (const c of ids) this.seqs.set(c, { rope: { ...parent.rope }, tokens: [...parent.tokens] });
    return ids;
  }

  /** Samples for the sequences (batched KV-cache decoding) until each stops. */
  async generate(ids: number[], options: QwenGenerateOptions = {}): Promise<QwenGenerated[]> {
    const st = ids.map((id) => this.state(id));
    const out = await native().qwenSessionGenerateAsync({ session: this.h, ids: Int32Array.from(ids), ...genParams(options) });
    out.forEach((g, i) => {
      const r = st[i].rope;
      st[i].rope = { next: r.next + g.tokens.length, ropeDelta: r.ropeDelta }; // tokens and positions both advance: the delta stays
      st[i].tokens.push(...Array.from(g.tokens));
    });
    return out;
  }

  /** Every token of a sequence so far (prompt, appended, sampled). */
  tokens(id: number): Int32Array {
    return Int32Array.from(this.state(id).tokens);
  }

  release(ids: number[]): void {
    if (ids.length === 0) return;
    native().qwenSessionRelease({ session: this.h, ids: Int32Array.from(ids) });
    for (const id of ids) this.seqs.delete(id);
  }

  dispose(): void {
    if (this.handle) native().qwenSessionDispose({ session: this.handle });
    this.handle = undefined;
    this.seqs.clear();
  }
}
