// Raw typed face of the Qwen2-VL / Qwen2.5-VL entry points (native/addon/qwen_binding.cc). Users go
// through src/models/qwen2_vl (QwenVLModel), which prepares images, positions and batches.

/** Opaque native handle (type-tagged external). */
export type QwenHandle = { readonly __qwenHandle: unique symbol };

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
  /** Refuse (RangeError, before allocating) more parameters than this (default 2^34); 3/4 of RAM caps it too. */
  maxParams?: number;
}

export interface RawQwenTensor {
  name: string;
  shape: number[];
  size: number;
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

export interface RawQwenGenerateInput extends RawQwenBatch {
  /** Per sequence, the position of its first generated token (ropeIndex's `next`). */
  next: Int32Array;
  maxNewTokens?: number;
  /** 0: greedy. */
  temperature?: number;
  topP?: number;
  seed?: number;
  stopTokens?: Int32Array;
  bannedTokens?: Int32Array;
}

export interface NativeQwenFunctions {
  qwenConfigTable(o: RawQwenConfig): RawQwenTensor[];
  qwenCreate(o: RawQwenConfig): QwenHandle;
  qwenDispose(o: { model: QwenHandle }): void;
  qwenTable(o: { model: QwenHandle }): RawQwenTensor[];
  qwenSetTensor(o: { model: QwenHandle; index: number; data: Float32Array }): void;
  qwenGetTensor(o: { model: QwenHandle; index: number }): Float32Array;
  qwenEncodeImagesAsync(o: { model: QwenHandle; pixels: Float32Array; grids: Int32Array }): Promise<Float32Array>;
  qwenScoreAsync(o: RawQwenBatch & { targets: Int32Array; temperature?: number; entropy?: boolean }): Promise<{ logp: Float32Array; entropy: Float32Array }>;
  qwenLastLogitsAsync(o: RawQwenBatch): Promise<Float32Array>;
  qwenGenerateAsync(o: RawQwenGenerateInput): Promise<RawQwenGenerated[]>;
}
