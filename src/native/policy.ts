// Raw typed face of the native policy entry points (native/addon/policy_binding.cc). Users go
// through src/policy (NativePolicy), which validates at the boundary and queues calls per model.
import { nativeFunctions } from './runtime';

/** Opaque native handles (type-tagged externals). */
export type PolicyHandle = { readonly __policyHandle: unique symbol };
export type SessionHandle = { readonly __sessionHandle: unique symbol };

export interface RawPolicyConfig {
  vocabSize: number;
  dModel: number;
  nLayer: number;
  nHead: number;
  maxSeq: number;
  patch: number;
  imageSize: number;
  channels: number;
  /** Id of <|image|>. */
  imageId: number;
  seed?: number;
  /** GPT-2 initialization (default true); false leaves zeros for a checkpoint to fill. */
  init?: boolean;
  /** Where the model runs (default 'cpu'); 'cuda' throws when the addon has no CUDA or no usable GPU. */
  device?: 'cpu' | 'cuda';
  /** GEMM precision on 'cuda' (default 'fp32'); the CPU is always fp32. */
  dtype?: 'fp32' | 'bf16';
  /** Refuse (RangeError, before allocating) a config of more parameters (default 2^31); 3/4 of RAM caps it too. */
  maxParams?: number;
}

/** policyCudaProbe(): can this process run the policy on a GPU, and if not, why. */
export interface RawCudaProbe {
  /** The addon was built with the CUDA sources. */
  compiled: boolean;
  /** Device 0 can run the policy now. */
  usable: boolean;
  /** Why not (empty when usable). */
  reason: string;
  /** E.g. "NVIDIA H100 80GB HBM3 (sm_90)" (empty when no device). */
  name: string;
}

export interface RawPolicyDevice {
  device: 'cpu' | 'cuda';
  dtype: 'fp32' | 'bf16';
  /** 'cpu', or e.g. "cuda:0 NVIDIA H100 80GB HBM3 (sm_90), bf16". */
  name: string;
}

/** A packed ragged batch: concatenated tokens, per-sequence lengths, nImages views concatenated (HWC uint8). */
export interface RawBatch {
  tokens: Int32Array;
  lengths: Int32Array;
  images: Uint8Array;
  nImages: number;
  /** Per token: score (non-zero) or not. */
  mask?: Int32Array;
}

export interface RawForwardInput extends RawBatch {
  model: PolicyHandle;
  temperature?: number;
  entropy?: boolean;
  requireGrad?: boolean;
  /** Shared prefixes (native/model/prefix.h): per sequence its group or -1; with prefixLength. */
  prefixGroup?: Int32Array;
  /** Per group: the tokens its sequences share (identical ids, images and mask). */
  prefixLength?: Int32Array;
}

export interface RawForwardOut {
  logp: Float32Array;
  entropy: Float32Array;
  scored: number;
  /** Expanded positions computed (fewer than the batch's when prefixes are shared). */
  rows: number;
}

export interface RawParamInfo {
  name: string;
  shape: number[];
  offset: number;
  size: number;
  decay: boolean;
}

export type RawBufferName = 'params' | 'grads' | 'm' | 'v';

export interface RawGenerateOut {
  id: number;
  tokens: Int32Array;
  logp: Float32Array;
  finishReason: 'stop_token' | 'stop_string' | 'max_new_tokens' | 'max_seq';
}

export interface NativePolicyFunctions {
  policyCreate(o: RawPolicyConfig): PolicyHandle;
  policyCreateAsync(o: RawPolicyConfig): Promise<PolicyHandle>;
  policyLayout(o: { model: PolicyHandle }): RawParamInfo[];
  /** The tensor table of a config, without building the model (RangeError past `maxParams` or 3/4 of RAM). */
  policyConfigLayout(o: Omit<RawPolicyConfig, 'seed' | 'init' | 'device' | 'dtype'>): RawParamInfo[];
  policyRead(o: { model: PolicyHandle; which: RawBufferName; offset?: number; size?: number }): Float32Array;
  policyWrite(o: { model: PolicyHandle; which: RawBufferName; offset?: number; data: Float32Array }): void;
  policyGetStep(o: { model: PolicyHandle }): number;
  policySetStep(o: { model: PolicyHandle; step: number }): void;
  policyDispose(o: { model: PolicyHandle }): void;
  policyDevice(o: { model: PolicyHandle }): RawPolicyDevice;
  policyCudaProbe(): RawCudaProbe;
  policyForward(o: RawForwardInput): RawForwardOut;
  policyForwardAsync(o: RawForwardInput): Promise<RawForwardOut>;
  policyBackwardAsync(o: { model: PolicyHandle; total: number; dlogp: Float32Array; dentropy?: Float32Array }): Promise<void>;
  policyCrossEntropyAsync(
    o: RawBatch & { model: PolicyHandle; reduction?: 'mean' | 'sum'; scale?: number },
  ): Promise<{ loss: number; count: number }>;
  policyStepAsync(o: {
    model: PolicyHandle;
    lr?: number;
    beta1?: number;
    beta2?: number;
    eps?: number;
    weightDecay?: number;
    maxGradNorm?: number;
    zeroGrad?: boolean;
  }): Promise<{ step: number; gradNorm: number; clipped: boolean; finite: boolean }>;
  policyZeroGradAsync(o: { model: PolicyHandle }): Promise<void>;
  sessionCreate(o: { model: PolicyHandle; kvCache?: boolean; seed?: number; specials?: string[] }): SessionHandle;
  sessionAddAsync(
    o: RawBatch & {
      session: SessionHandle;
      seeds: number[];
      steps: number[];
      promptIndices: number[];
      sampleIndices: number[];
      /** Draws each stream already made (default 0 each): the first sampled token uses draw number counters[i]. */
      counters?: number[];
    },
  ): Promise<number[]>;
  sessionAppendAsync(o: RawBatch & { session: SessionHandle; ids: Int32Array }): Promise<void>;
  /** One new sequence per key (the four arrays have one entry each), continuing sequence `id`. */
  sessionForkAsync(o: { session: SessionHandle; id: number; seeds: number[]; steps: number[]; promptIndices: number[]; sampleIndices: number[] }): Promise<number[]>;
  sessionGenerateAsync(o: {
    session: SessionHandle;
    ids: Int32Array;
    maxNewTokens?: number;
    temperature?: number;
    topP?: number;
    stopTokens?: Int32Array;
    stopStrings?: string[];
    bannedTokens?: Int32Array;
  }): Promise<RawGenerateOut[]>;
  sessionTokens(o: { session: SessionHandle; ids: Int32Array }): Int32Array;
  sessionRelease(o: { session: SessionHandle; ids: Int32Array }): void;
  sessionDispose(o: { session: SessionHandle }): void;
}

/** The addon's policy functions (loads the addon on first use). */
export function nativePolicyFunctions(): NativePolicyFunctions {
  return nativeFunctions<NativePolicyFunctions>();
}
