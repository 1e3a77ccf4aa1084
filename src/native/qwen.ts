// Raw typed face of the Qwen2-VL / Qwen2.5-VL entry points (native/addon/qwen_binding.cc). Users go
// through src/models/qwen2_vl (QwenVLModel), which prepares images, positions and batches.

/** Opaque native handles (type-tagged externals). */
export type QwenHandle = { readonly __qwenHandle: unique symbol };
export type QwenSessionHandle = { readonly __qwenSessionHandle: unique symbol };

/** The config as the native engine reads it (flat; built by engine.ts from a QwenVLConfig). */
export interface RawQwenConfig {
  family: 'qwen2_vl' | 'qwen2_5_vl';
  vocabSize: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  rmsEps: number;
  ropeTheta: number;
  mropeT: number;
  mropeH: number;
  mropeW: number;
  tieEmbeddings: boolean;
  visionDepth: number;
  visionDim: number;
  visionHeads: number;
  visionMlp: number;
  inChannels: number;
  patch: number;
  merge: number;
  temporalPatch: number;
  outHidden: number;
  windowSize?: number;
  fullAttBlocks?: Int32Array;
  imageToken: number;
  /** How matrices are stored: float32 (default) or bfloat16 (norm weights and biases stay float32). */
  dtype?: QwenDtype;
  /** qwenCreate, bfloat16 only: 'bf16' computes decode rows (and last-row logits) with X rounded to bf16 (vdpbf16ps). Default 'exact'. */
  decodeMath?: QwenDecodeMath;
  /** Refuse (RangeError, before allocating) more parameters than this (default 2^34); 3/4 of RAM caps it too. */
  maxParams?: number;
  /** qwenCreate only: random weights from this seed (integer in [0, 2^53)): N(0, 0.02), norm weights 1, biases 0. Default: zeros. */
  seed?: number;
}

export type QwenDtype = 'float32' | 'bfloat16';
export type QwenDecodeMath = 'exact' | 'bf16';

/** One tensor of a Qwen model's native table (QwenVLModel.tensors): its checkpoint name, shape and storage. */
export interface RawQwenTensor {
  /** The checkpoint (safetensors) name, e.g. 'model.layers.0.self_attn.q_proj.weight'. */
  name: string;
  /** Dimensions, as in the checkpoint. */
  shape: number[];
  /** Number of elements (the product of `shape`). */
  size: number;
  /** How the model stores it. */
  dtype: QwenDtype;
}

/** A ragged batch: sequences concatenated. */
export interface RawQwenBatch {
  model: QwenHandle;
  tokens: Int32Array;
  lengths: Int32Array;
  /** Per sequence its [3, n] position ids (t row, h row, w row), concatenated. */
  positions: Int32Array;
  /** One row of hidden size per image token, in order of appearance. */
  imageEmbeds?: Float32Array;
}

export interface RawQwenGenerated {
  tokens: Int32Array;
  logp: Float32Array;
  finishReason: 'stop_token' | 'max_new_tokens';
}

export interface RawQwenGenerateInput extends RawQwenBatch, RawQwenGenParams {
  /** Per sequence, the position of its first generated token (ropeIndex's `next`). */
  next: Int32Array;
  /** Sequence s samples from stream (seed, 0, s, 0). */
  seed?: number;
}

/** SPEC §7 stream keys, one entry per sequence. */
export interface RawQwenKeys {
  seeds: number[];
  steps: number[];
  promptIndices: number[];
  sampleIndices: number[];
  /** Draws each stream already made (qwenSessionAdd only; default 0 each). */
  counters?: number[];
}

/** Sampling parameters of a generate call. */
export interface RawQwenGenParams {
  maxNewTokens?: number;
  /** 0: greedy. */
  temperature?: number;
  topP?: number;
  stopTokens?: Int32Array;
  bannedTokens?: Int32Array;
}

type SessionBatch = Omit<RawQwenBatch, 'model'> & { session: QwenSessionHandle; next: Int32Array };

export interface NativeQwenFunctions {
  qwenConfigTable(o: RawQwenConfig): RawQwenTensor[];
  qwenCreate(o: RawQwenConfig): QwenHandle;
  qwenDispose(o: { model: QwenHandle }): void;
  qwenTable(o: { model: QwenHandle }): RawQwenTensor[];
  /** `data` as float32 values (rounded to bf16 where stored so) or bf16 bits (Uint16Array, widened where stored in float32). */
  qwenSetTensor(o: { model: QwenHandle; index: number; data: Float32Array | Uint16Array }): void;
  qwenGetTensor(o: { model: QwenHandle; index: number }): Float32Array;
  qwenEncodeImagesAsync(o: { model: QwenHandle; pixels: Float32Array; grids: Int32Array }): Promise<Float32Array>;
  qwenScoreAsync(o: RawQwenBatch & { targets: Int32Array; temperature?: number; entropy?: boolean }): Promise<{ logp: Float32Array; entropy: Float32Array }>;
  qwenLastLogitsAsync(o: RawQwenBatch): Promise<Float32Array>;
  qwenGenerateAsync(o: RawQwenGenerateInput): Promise<RawQwenGenerated[]>;
  qwenSessionCreate(o: { model: QwenHandle }): QwenSessionHandle;
  qwenSessionDispose(o: { session: QwenSessionHandle }): void;
  /** Adds and prefills sequences; `next`: the position after each. Returns their handles. */
  qwenSessionAddAsync(o: SessionBatch & RawQwenKeys): Promise<Int32Array>;
  /** Queues one segment per id (prefilled by the next generate or fork). */
  qwenSessionAppend(o: SessionBatch & { ids: Int32Array }): void;
  qwenSessionForkAsync(o: { session: QwenSessionHandle; id: number; n: number } & RawQwenKeys): Promise<Int32Array>;
  qwenSessionGenerateAsync(o: { session: QwenSessionHandle; ids: Int32Array } & RawQwenGenParams): Promise<RawQwenGenerated[]>;
  qwenSessionRelease(o: { session: QwenSessionHandle; ids: Int32Array }): void;
}
