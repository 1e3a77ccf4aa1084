// A Qwen2-VL / Qwen2.5-VL model on medgym's native engine (native/model/qwen): loaded from a Hugging
// Face model directory, it encodes images, scores token sequences (per-token log-probs through the
// fused head) and generates with a KV cache. Sequences are given in token space with their
// <|image_pad|> runs already expanded (encodeChat does it); positions come from ropeIndex.
import { nativeFunctions } from '../../native/runtime';
import type { NativeQwenFunctions, QwenDecodeMath, QwenDtype, QwenHandle, RawQwenConfig, RawQwenTensor } from '../../native/qwen';
import type { HfCheckpoint } from '../hf_checkpoint';
import { CheckpointError, openHfCheckpoint } from '../hf_checkpoint';
import type { QwenVLConfig } from './config';
import { readQwenConfig } from './config';
import type { PixelInput, Preprocessed, PreprocessorConfig } from './preprocess';
import { DEFAULT_PREPROCESSOR, preprocessImage, readPreprocessorConfig } from './preprocess';
import type { RopeIndex, RopeIndexOptions, RopeState } from './rope_index';
import { ropeIndex, ropeOptions } from './rope_index';
import { matchWeights, weightTable } from './weights';
import { genParams, QwenSession } from './session';

const native = (): NativeQwenFunctions => nativeFunctions<NativeQwenFunctions>();

/** An image as raw pixels (preprocessed with the model's processor) or already preprocessed. */
export type QwenImage = PixelInput | Preprocessed;

export interface QwenSequence {
  /** Token ids, each image's <|image_pad|> run expanded to its merged token count. */
  ids: ArrayLike<number>;
  /** One per <|image_pad|> run, in order. */
  images?: QwenImage[];
}

export interface QwenLoadOptions {
  /** Refuse a config of more parameters than this (default 2^34); 3/4 of RAM caps it too. */
  maxParams?: number;
  /**
   * How the matrices are kept in memory. 'auto' (default): bfloat16 when every matrix of the
   * checkpoint is BF16 (the Hub's Qwen2-VL / Qwen2.5-VL are), read without widening; else float32.
   * 'bfloat16' on F32 / F16 weights rounds them to the nearest bf16. Activations and sums are fp32.
   */
  dtype?: 'auto' | QwenDtype;
  /** As QwenRandomOptions.decodeMath (needs bf16 storage: with 'auto', a BF16 checkpoint). */
  decodeMath?: QwenDecodeMath;
}

export interface QwenRandomOptions {
  /** Default: Qwen2-VL's processor with the config's patch sizes. */
  preprocessor?: PreprocessorConfig;
  /** Default float32. */
  dtype?: QwenDtype;
  /**
   * How decode rows (generation steps, and the last-row logits of `lastLogits` / `generate`) are
   * computed with bf16 weights. 'exact' (default): fp32 products of the widened weights, as prefill
   * and `score` compute them. 'bf16': the activations rounded to bf16 and multiplied with AVX-512
   * BF16's vdpbf16ps (what PyTorch bf16 computes): about 1.6× the GEMM rate at batch 16, but sampled
   * tokens' log-probs then differ from `score`'s by bf16 rounding (~1e-2), not fp32 rounding. Still
   * batch invariant. Prefill and `score` are exact either way.
   */
  decodeMath?: QwenDecodeMath;
}

/** The storage 'auto' picks for a checkpoint: bfloat16 when all its matrices are BF16. */
function autoDtype(ck: HfCheckpoint, files: Map<string, string>, table: RawQwenTensor[]): QwenDtype {
  const matrices = table.filter((t) => t.shape.length >= 2);
  return matrices.every((t) => ck.tensors.get(files.get(t.name)!)!.dtype === 'BF16') ? 'bfloat16' : 'float32';
}

export interface QwenScoreOptions {
  /** logp = log_softmax(logits / τ)[id] (default 1). */
  temperature?: number;
  /** Per sequence, tokens to score (1) or skip (0); default every token t ≥ 1. */
  masks?: ArrayLike<number>[];
}

export interface QwenScoreResult {
  /** Per sequence, per token: log p(ids[t] | ids[<t]); 0 at t = 0 and unscored tokens. */
  logp: Float32Array[];
  entropy: Float32Array[];
}

export interface QwenGenerateOptions {
  /** Default 256. */
  maxNewTokens?: number;
  /** 0: greedy (logp then at τ = 1). Default 1. */
  temperature?: number;
  topP?: number;
  /** Seed of the sampling streams (sequence s draws from stream (seed, 0, s, 0)). */
  seed?: number;
  /** Default: generation_config / config eos ids when the caller passes none; none here means none. */
  stopTokens?: number[];
  bannedTokens?: number[];
}

export interface QwenGenerated {
  tokens: Int32Array;
  logp: Float32Array;
  finishReason: 'stop_token' | 'max_new_tokens';
}

/** A batch as the addon takes it, with each sequence's rope state after it. */
export interface PackedBatch {
  tokens: Int32Array;
  lengths: Int32Array;
  positions: Int32Array;
  imageEmbeds: Float32Array;
  next: Int32Array;
  states: RopeIndex[];
}

/** The flat config the addon reads. */
export function rawQwenConfig(c: QwenVLConfig): RawQwenConfig {
  const t = c.text;
  const v = c.vision;
  return {
    family: c.family,
    vocabSize: t.vocabSize,
    hidden: t.hidden,
    intermediate: t.intermediate,
    layers: t.layers,
    heads: t.heads,
    kvHeads: t.kvHeads,
    headDim: t.headDim,
    rmsEps: t.rmsEps,
    ropeTheta: t.ropeTheta,
    mropeT: t.mropeSection[0],
    mropeH: t.mropeSection[1],
    mropeW: t.mropeSection[2],
    tieEmbeddings: t.tieEmbeddings,
    visionDepth: v.depth,
    visionDim: v.dim,
    visionHeads: v.heads,
    visionMlp: v.mlpHidden,
    inChannels: v.inChannels,
    patch: v.patch,
    merge: v.merge,
    temporalPatch: v.temporalPatch,
    outHidden: v.outHidden,
    ...(c.family === 'qwen2_5_vl' ? { windowSize: v.windowSize ?? 112, fullAttBlocks: Int32Array.from(v.fullAttBlocks ?? []) } : {}),
    imageToken: c.tokens.image,
  };
}

const isPreprocessed = (im: QwenImage): im is Preprocessed => (im as Preprocessed).pixelValues !== undefined;

export class QwenVLModel {
  private handle: QwenHandle | undefined;
  /** What the 3-D (M-RoPE) position index needs from the config: image and vision-start token ids, merge size, family. */
  readonly rope: RopeIndexOptions;

  private constructor(
    handle: QwenHandle,
    /** The model configuration (parsed from config.json, or the one given to random()). */
    readonly config: QwenVLConfig,
    /** Image preprocessing: pixel budget, patch and merge sizes, normalization (from preprocessor_config.json; for random(), the option or the defaults). */
    readonly preprocessor: PreprocessorConfig,
    /** The native tensor table (checkpoint names and shapes). */
    readonly tensors: RawQwenTensor[],
  ) {
    this.handle = handle;
    this.rope = ropeOptions(config);
  }

  /**
   * Loads `dir` (config.json, model.safetensors or shards with their index, preprocessor_config.json):
   * every tensor's name, shape and dtype is checked before the weights are allocated; tensors are then
   * read one at a time (F32, BF16 or F16) into the model's storage (`options.dtype`).
   */
  static async load(dir: string, options: QwenLoadOptions = {}): Promise<QwenVLModel> {
    const config = readQwenConfig(dir);
    const preprocessor = readPreprocessorConfig(dir);
    const v = config.vision;
    if (preprocessor.patch !== v.patch || preprocessor.merge !== v.merge || preprocessor.temporalPatch !== v.temporalPatch) {
      throw new CheckpointError(`${dir}: preprocessor_config.json (patch ${preprocessor.patch}, merge ${preprocessor.merge}, temporal ${preprocessor.temporalPatch}) disagrees with config.json's vision_config (${v.patch}, ${v.merge}, ${v.temporalPatch})`);
    }
    const ck = await openHfCheckpoint(dir);
    try {
      const files = matchWeights(config, ck);
      const want = weightTable(config);
      const base = { ...rawQwenConfig(config), ...(options.maxParams !== undefined ? { maxParams: options.maxParams } : {}) };
      const dtype = options.dtype === undefined || options.dtype === 'auto' ? autoDtype(ck, files, native().qwenConfigTable(base)) : options.dtype;
      const raw = { ...base, dtype, ...(options.decodeMath !== undefined ? { decodeMath: options.decodeMath } : {}) };
      const table = native().qwenConfigTable(raw);
      if (table.length !== want.length || table.some((t, i) => t.name !== want[i].name || t.shape.join() !== want[i].shape.join())) {
        throw new Error('qwen: the native tensor table differs from weightTable (a build mismatch)');
      }
      const handle = native().qwenCreate(raw);
      const model = new QwenVLModel(handle, config, preprocessor, table);
      try {
        for (let i = 0; i < table.length; i++) {
          const name = files.get(table[i].name)!;
          // BF16 weights are handed over as bits: never widened, in JS or natively, where stored in bf16.
          const data = ck.tensors.get(name)!.dtype === 'BF16' ? await ck.readBf16(name) : await ck.readFloat32(name);
          native().qwenSetTensor({ model: handle, index: i, data });
        }
      } catch (err) {
        model.dispose();
        throw err;
      }
      return model;
    } finally {
      await ck.close();
    }
  }

  /**
   * A model of `config` with random weights drawn natively from `seed` (an integer in [0, 2^53)): every
   * matrix and embedding N(0, 0.02), norm weights 1, biases 0; the same seed gives the same weights.
   * For benchmarks and tests (bfloat16: each weight rounded to the nearest bf16).
   */
  static random(config: QwenVLConfig, seed: number, options: QwenRandomOptions = {}): QwenVLModel {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`Expected an integer in [0, 2^53) for seed but received ${String(seed)}`);
    const raw = { ...rawQwenConfig(config), dtype: options.dtype ?? 'float32', ...(options.decodeMath !== undefined ? { decodeMath: options.decodeMath } : {}) };
    const handle = native().qwenCreate({ ...raw, seed });
    const v = config.vision;
    const pre = options.preprocessor ?? { ...DEFAULT_PREPROCESSOR, patch: v.patch, merge: v.merge, temporalPatch: v.temporalPatch };
    return new QwenVLModel(handle, config, pre, native().qwenConfigTable(raw));
  }

  private get h(): QwenHandle {
    if (!this.handle) throw new Error('QwenVLModel: disposed');
    return this.handle;
  }

  /** A tensor's values as the checkpoint holds them (by Hub name). */
  getTensor(name: string): Float32Array {
    const index = this.tensors.findIndex((t) => t.name === name);
    if (index < 0) throw new RangeError(`QwenVLModel.getTensor: no tensor '${name}'`);
    return native().qwenGetTensor({ model: this.h, index });
  }

  /** How the matrices are stored ('bfloat16' or 'float32'; norm weights and biases are always float32). */
  get dtype(): QwenDtype {
    return this.tensors.some((t) => t.dtype === 'bfloat16') ? 'bfloat16' : 'float32';
  }

  /**
   * Overwrites a tensor (checkpoint layout, by Hub name): float32 values (rounded where stored in
   * bf16) or bf16 bits. Sessions made before then refuse to go on.
   */
  setTensor(name: string, data: Float32Array | Uint16Array): void {
    const index = this.tensors.findIndex((t) => t.name === name);
    if (index < 0) throw new RangeError(`QwenVLModel.setTensor: no tensor '${name}'`);
    native().qwenSetTensor({ model: this.h, index, data });
  }

  /** The model's preprocessing of an image (raw pixels) or the image itself (already preprocessed). */
  preprocess(image: QwenImage): Preprocessed {
    return isPreprocessed(image) ? image : preprocessImage(image, this.preprocessor);
  }

  /** Vision tower: one row of hidden size per merged token of each image, images in order. */
  async encodeImages(images: QwenImage[]): Promise<Float32Array> {
    if (images.length === 0) return new Float32Array(0);
    const pre = images.map((im) => this.preprocess(im));
    const pixels = new Float32Array(pre.reduce((a, p) => a + p.pixelValues.length, 0));
    let off = 0;
    for (const p of pre) {
      pixels.set(p.pixelValues, off);
      off += p.pixelValues.length;
    }
    return native().qwenEncodeImagesAsync({ model: this.h, pixels, grids: Int32Array.from(pre.flatMap((p) => p.grid)) });
  }

  /**
   * Packs sequences (or segments appended to sequences whose rope states are `starts`) for the addon:
   * ids, lengths, positions (ropeIndex), the image rows (vision tower) and each one's rope state after it.
   */
  async packBatch(seqs: QwenSequence[], starts?: (RopeState | undefined)[]): Promise<PackedBatch> {
    if (seqs.length === 0) throw new RangeError('QwenVLModel: expected at least one sequence');
    const lengths = Int32Array.from(seqs.map((s) => s.ids.length));
    const total = lengths.reduce((a, n) => a + n, 0);
    const tokens = new Int32Array(total);
    const positions = new Int32Array(3 * total);
    const next = new Int32Array(seqs.length);
    const states: RopeIndex[] = [];
    const images: Preprocessed[] = [];
    let off = 0;
    seqs.forEach((s, i) => {
      const pre = (s.images ?? []).map((im) => this.preprocess(im));
      const r = ropeIndex(s.ids, pre.map((p) => p.grid), this.rope, starts?.[i]);
      tokens.set(Array.from(s.ids), off);
      positions.set(r.positions, 3 * off);
      next[i] = r.next;
      states.push(r);
      images.push(...pre);
      off += s.ids.length;
    });
    const imageEmbeds = await this.encodeImages(images);
    return { tokens, lengths, positions, imageEmbeds, next, states };
  }

  private async pack(seqs: QwenSequence[]) {
    const { states: _states, ...b } = await this.packBatch(seqs);
    return { model: this.h, ...b };
  }

  /** A generation session: sequences keep their KV caches between calls (multi-turn episodes). */
  createSession(): QwenSession {
    return new QwenSession(this, native().qwenSessionCreate({ model: this.h }));
  }

  /** Per-token log-probs (and entropies) of each sequence; no logits tensor of the batch ever exists. */
  async score(seqs: QwenSequence[], options: QwenScoreOptions = {}): Promise<QwenScoreResult> {
    const b = await this.pack(seqs);
    // Row t - 1 predicts token t.
    const targets = new Int32Array(b.tokens.length).fill(-1);
    let off = 0;
    seqs.forEach((s, i) => {
      const mask = options.masks?.[i];
      if (mask && mask.length !== s.ids.length) throw new RangeError(`QwenVLModel.score: masks[${i}] has ${mask.length} entries for ${s.ids.length} tokens`);
      for (let t = 1; t < s.ids.length; t++) if (!mask || mask[t]) targets[off + t - 1] = s.ids[t];
      off += s.ids.length;
    });
    const { next: _next, ...batch } = b;
    const out = await native().qwenScoreAsync({ ...batch, targets, temperature: options.temperature ?? 1 });
    const logp: Float32Array[] = [];
    const entropy: Float32Array[] = [];
    off = 0;
    for (const s of seqs) {
      const n = s.ids.length;
      const lp = new Float32Array(n);
      const en = new Float32Array(n);
      lp.set(out.logp.subarray(off, off + n - 1), 1);
      en.set(out.entropy.subarray(off, off + n - 1), 1);
      logp.push(lp);
      entropy.push(en);
      off += n;
    }
    return { logp, entropy };
  }

  /** The logits after each sequence's last token ([V] per sequence). */
  async lastLogits(seqs: QwenSequence[]): Promise<Float32Array[]> {
    const { next: _next, ...batch } = await this.pack(seqs);
    const all = await native().qwenLastLogitsAsync(batch);
    const V = this.config.text.vocabSize;
    return seqs.map((_, i) => all.slice(i * V, (i + 1) * V));
  }

  /** Batched KV-cache generation after each sequence (one prefill, then one step per token). */
  async generate(seqs: QwenSequence[], options: QwenGenerateOptions = {}): Promise<QwenGenerated[]> {
    const b = await this.pack(seqs);
    return native().qwenGenerateAsync({ ...b, ...genParams(options), seed: options.seed ?? 0 });
  }

  dispose(): void {
    if (this.handle) native().qwenDispose({ model: this.handle });
    this.handle = undefined;
  }
}
