// Public types of medgym's native policy (SPEC §1 model, §7 token-in-token-out sampling).
// The class itself is in ./native_policy.ts; docs/policy.md describes the design.
import type { ViewImage } from '../tools/image';

/** SPEC §1 config (stored in the checkpoint as snake_case JSON: vocab_size, d_model, ...). */
export interface PolicyConfig {
  /** V: 256 bytes + the special tokens (268 today). */
  vocabSize: number;
  /** d: model width. Must be divisible by nHead. */
  dModel: number;
  /** L: transformer blocks. */
  nLayer: number;
  /** H: attention heads (head dim d/H). */
  nHead: number;
  /** T_max: longest expanded sequence (each <|image|> counts N_p positions). */
  maxSeq: number;
  /** P: patch side in pixels. */
  patch: number;
  /** S: side of the square image views; must be a multiple of P. N_p = (S/P)^2 positions per image. */
  imageSize: number;
  /** C: view channels, 1 or 3. A 1-channel view given to a 3-channel model is replicated to 3. */
  channels: 1 | 3;
}

/** tiny ≈ 1M params (tests, d128 L4), small ≈ 11M (CPU default, d384 L6), base ≈ 87M (GPU, d768 L12). */
export type PolicyPreset = 'tiny' | 'small' | 'base';

/** Where a policy runs: 'auto' picks 'cuda' when a GPU can run it, else 'cpu' (see NativePolicy.deviceInfo). */
export type PolicyDeviceRequest = 'cpu' | 'cuda' | 'auto';
/** GEMM precision on the GPU: 'bf16' runs GEMMs (and their inputs) in bf16 with fp32 accumulation and fp32 master weights. */
export type PolicyDtype = 'fp32' | 'bf16';

export interface DeviceOptions {
  /** Default 'cpu'. 'cuda' throws (with the reason) when no GPU can run the policy; 'auto' falls back to the CPU. */
  device?: PolicyDeviceRequest;
  /** Default 'fp32'. 'bf16' needs the GPU (with 'auto' on the CPU it is fp32, and deviceInfo.reason says so). */
  dtype?: PolicyDtype;
}

export interface LoadOptions extends DeviceOptions {
  /**
   * Refuse a checkpoint whose config asks for more parameters than this (default 2^31). The file's
   * tensors must match its config exactly, and weights plus gradients must fit in 3/4 of RAM, either way.
   */
  maxParams?: number;
}

/** Where a NativePolicy runs and why (NativePolicy.deviceInfo). */
export interface PolicyDeviceInfo {
  /** Where it runs. */
  device: 'cpu' | 'cuda';
  /** GEMM precision ('fp32' on the CPU). */
  dtype: PolicyDtype;
  /** What was asked for. */
  requested: PolicyDeviceRequest;
  /** 'cpu', or e.g. "cuda:0 NVIDIA H100 80GB HBM3 (sm_90), bf16". */
  name: string;
  /** Why this device: e.g. "requested", "CUDA device usable", or the reason the GPU is not usable. */
  reason: string;
}

export interface CreateOptions extends DeviceOptions {
  /** Seed of the weight initialization (GPT-2 init: N(0, 0.02), residual projections / sqrt(2L)). Default 0. */
  seed?: number;
}

/** One sequence in token space: SPEC §1 ids with ONE IMAGE_ID (259) per image, plus the views in order. */
export interface PolicySequence {
  /** Token ids (number[] or Int32Array). Each IMAGE_ID expands to N_p positions inside the model. */
  tokens: ArrayLike<number>;
  /** One view per IMAGE_ID, in order, of size imageSize × imageSize with `channels` (or 1) channels. */
  images?: ViewImage[];
  /**
   * Tokens to score (1) or skip (0), same length as `tokens`; default all text tokens t >= 1.
   * Skipped tokens get logp = entropy = 0 and cost nothing in the output head (GRPO: pass the loss mask).
   */
  mask?: ArrayLike<number>;
}

export interface ForwardOptions {
  /** SPEC §1 τ: logp = log_softmax(logits / τ)[id]. Default 1. */
  temperature?: number;
  /** Also compute the entropy of each scored position (default true). */
  entropy?: boolean;
  /**
   * Keep the activations for a following backward() (default false: nothing is kept). Only one
   * forward's activations are held at a time; backward() consumes them.
   */
  requireGrad?: boolean;
  /**
   * Shared prefixes (GRPO: a prompt's G trajectories): each group's sequences hold the same first
   * `length` tokens (ids, images and mask), whose positions are then computed once instead of once
   * per sequence. Exact: the outputs and gradients are those of the unshared batch (to float32
   * rounding). `length` omitted: the longest common prefix of the group. A sequence may be in one
   * group at most; groups of one sequence or prefixes of fewer than 2 tokens share nothing.
   */
  prefixGroups?: PrefixGroup[];
}

/** Sequences of a forward's batch that share their first `length` tokens (see ForwardOptions.prefixGroups). */
export interface PrefixGroup {
  /** Indices into the batch. */
  seqs: number[];
  /** Shared tokens (default: the longest common prefix: same ids, views and mask). */
  length?: number;
}

export interface ForwardResult {
  /** Per sequence, per token: log-prob of tokens[t] given tokens[<t]; 0 at t = 0, image tokens and unscored tokens. */
  logp: Float32Array[];
  /** Per sequence, per token: entropy of the same distribution (0 where logp is 0, or everywhere when entropy: false). */
  entropy: Float32Array[];
  /** Expanded positions of the batch (all sequences). */
  positions: number;
  /** Expanded positions computed: `positions` less the copies of shared prefixes (prefixGroups). */
  rows: number;
  /** Tokens scored. */
  scored: number;
}

export interface BackwardInput {
  /** d loss / d logp, per sequence, per token (same shape as ForwardResult.logp); ignored where unscored. */
  dlogp: ArrayLike<number>[];
  /** d loss / d entropy, optional (entropy bonus). */
  dentropy?: ArrayLike<number>[];
}

export interface CrossEntropyOptions {
  /** Default 'mean' (over scored tokens of the whole batch); 'sum' for manual scaling across micro-batches. */
  reduction?: 'mean' | 'sum';
  /** Multiplies the loss and its gradient (e.g. 1 / micro-batches). Default 1. */
  scale?: number;
}

export interface CrossEntropyResult {
  /** SFT loss -Σ logp / count ('mean') or -Σ logp ('sum'), before `scale`. */
  loss: number;
  /** Tokens scored. */
  count: number;
}

export interface OptimizerOptions {
  /** Learning rate (default 3e-4). */
  lr?: number;
  /** AdamW first-moment decay, in [0, 1) (default 0.9). */
  beta1?: number;
  /** AdamW second-moment decay, in [0, 1) (default 0.999). */
  beta2?: number;
  /** AdamW epsilon added to the denominator (default 1e-8). */
  eps?: number;
  /** Decoupled weight decay, applied to 2-D tensors only (weights and embeddings; not biases, not LayerNorm). Default 0.01. */
  weightDecay?: number;
  /** Clip the global gradient L2 norm to this (default 1.0; 0 or Infinity: no clipping). */
  maxGradNorm?: number;
  /** Zero the gradients after the update (default true). */
  zeroGrad?: boolean;
}

export interface StepResult {
  /** Optimizer steps taken so far (this one included). */
  step: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** The gradient norm exceeded maxGradNorm and the gradients were scaled down to it. */
  clipped: boolean;
  /** False when a gradient was NaN/Inf: the step was skipped (and the gradients zeroed). */
  finite: boolean;
}

export interface SaveOptions {
  /** Stored dtype (default 'F32'). */
  dtype?: 'F32' | 'BF16';
}

/** A tensor of the SPEC checkpoint table. */
export interface ParameterInfo {
  /** Tensor name in the checkpoint. */
  name: string;
  /** Tensor dimensions. */
  shape: number[];
  /** Offset in the flat parameter buffer (floats). */
  offset: number;
  /** Number of floats (the product of `shape`). */
  size: number;
  /** AdamW weight decay applies (2-D tensors). */
  decay: boolean;
}

/** SPEC §7 stream key: each sequence samples from its own counter-based stream. */
export interface SampleKey {
  /** Default: the session's seed. */
  seed?: number;
  /** Training step (default 0). */
  step?: number;
  /** Prompt index in the batch (default: the sequence's handle id, so that default streams differ). */
  promptIndex?: number;
  /** Sample index within the prompt's group (default 0). */
  sampleIndex?: number;
  /**
   * Draws the stream already made (default 0): the next sampled token uses draw number `counter`.
   * A conversation prefilled whole (a stateless server) passes the tokens sampled in its earlier turns,
   * so that it samples what one session going turn by turn would. Set at add(); fork children go on
   * from their parent's counter.
   */
  counter?: number;
}

export interface SessionOptions {
  /** Default seed of the sequences' stream keys (default 0). */
  seed?: number;
  /** Use the KV cache (default true). false recomputes the whole prefix for every token: a slow reference. */
  kvCache?: boolean;
}

export interface SessionSequenceInput {
  /** Prompt (or any prefix) in token space. */
  tokens: ArrayLike<number>;
  /** One view per IMAGE_ID in `tokens`, in order. */
  images?: ViewImage[];
  /** Random stream of this sequence. */
  key?: SampleKey;
}

export interface AppendInput {
  /** New tokens (e.g. an env tool response) appended after everything the sequence holds. */
  tokens: ArrayLike<number>;
  /** One view per IMAGE_ID in `tokens`, in order. */
  images?: ViewImage[];
}

export interface GenerateOptions {
  /** Tokens to sample at most per sequence in this call (default 256). */
  maxNewTokens?: number;
  /** τ (default 1). 0 means greedy (argmax; logp is then reported at τ = 1). */
  temperature?: number;
  /** Nucleus sampling mass (default 1: off). */
  topP?: number;
  /** Token ids that end a sequence (kept in its output). Default [EOS_ID, TOOL_CALL_END_ID]. */
  stopTokens?: number[];
  /** Strings that end a sequence when the decoded output ends with one (kept in the output). Default none. */
  stopStrings?: string[];
  /**
   * Token ids never sampled. Default [BOS, PAD, IMAGE, TOOL_RESPONSE] (DEFAULT_BANNED_TOKENS);
   * the list given replaces the default.
   */
  bannedTokens?: number[];
}

export type FinishReason = 'stop_token' | 'stop_string' | 'max_new_tokens' | 'max_seq';

export interface GenerateResult {
  /** Sequence handle (from add()). */
  id: number;
  /** Ids sampled in this call. */
  tokens: Int32Array;
  /** decode(tokens), for logs only (SPEC §7: token in, token out). */
  text: string;
  /** log_softmax(logits / τ)[token] of each sampled token, over the full vocabulary (GRPO old_logp). */
  logp: Float32Array;
  /** Why the sequence stopped: a stop token or string, the per-call token budget, or the model's context. */
  finishReason: FinishReason;
}

/**
 * A continuous-batching generation session over one model: each sequence has its own KV cache.
 * Sequences are added (prefix prefilled once), generated for (finishing independently), extended with
 * new segments (only the new part is prefilled) and released. A session is bound to the weights it
 * was created with: after an optimizer step (or any weight write) it rejects further calls — use a
 * new session per rollout.
 */
export interface GenerationSession {
  /** Prefills the sequences (batched) and returns their handles. */
  add(seqs: SessionSequenceInput[]): Promise<number[]>;
  /** Appends tokens (+ images) after the sequences' current content (a sampled stop token included). */
  append(items: { id: number; input: AppendInput }[]): Promise<void>;
  /**
   * `n` new sequences that continue sequence `id` (prefilled first if it has pending tokens): each
   * holds its tokens and images and shares its KV cache (copy-on-write), so a GRPO group prefills its
   * prompt once. Child j samples from stream `keys[j]` (fields default to `id`'s key, sampleIndex to
   * j); its draws go on from `id`'s counter (`keys[j].counter` is ignored). Forked right after add(), a child gives exactly what add() of the same prompt
   * with its key gives (same tokens, bit-identical logp); forked later, it goes on from `id`'s cache
   * as `id` computed it. `id` stays usable (release it when done). At most 4096 children per call.
   */
  fork(id: number, n: number, keys?: SampleKey[]): Promise<number[]>;
  /** Samples for the given sequences (batched KV-cache decoding) until each stops. */
  generate(ids: number[], options?: GenerateOptions): Promise<GenerateResult[]>;
  /** Every token of a sequence so far (prompt, appended and sampled), in token space. */
  tokens(id: number): Int32Array;
  /** Frees a sequence's cache. */
  release(ids: number[]): void;
  /** Frees everything. */
  dispose(): void;
}

/**
 * What rollouts and evaluation take: generation sessions, and the sizes the env budgets an episode
 * with. Implemented by every policy (the native medgym-vlm, pretrained families, remote ones).
 */
export interface Policy {
  /** Context positions one image view takes (medgym-vlm: N_p). */
  readonly imageTokens: number;
  /** Longest context, in positions. */
  readonly maxSeq: number;
  /** A generation session (KV caches) on this model. */
  createSession(options?: SessionOptions): GenerationSession;
  /** Frees the model. Further calls throw. */
  dispose(): void;
}

/** A policy that scores given sequences: GRPO's reference policy. */
export interface ScoringPolicy extends Policy {
  /** Batched ragged forward: per-token log-probs (+ entropies) via the fused head, no B×T×V tensor. */
  forward(batch: PolicySequence[], options?: ForwardOptions): Promise<ForwardResult>;
}

/**
 * What SFT and GRPO take; NativePolicy implements it (static NativePolicy.create(config | preset,
 * {seed}) and NativePolicy.load(path) build one). Heavy calls are async and run off the event loop;
 * calls on one model are queued and run one at a time. Weights live in native memory until dispose().
 */
export interface TrainablePolicy extends ScoringPolicy {
  /** The model's architecture (as created or loaded). */
  readonly config: PolicyConfig;
  /** Total parameter count. */
  readonly numParams: number;
  /** Optimizer steps taken. */
  readonly stepCount: number;
  /** Backward of Σ dlogp·logp + dentropy·entropy through the last forward({requireGrad: true}); gradients accumulate. */
  backward(grad: BackwardInput): Promise<void>;
  /** SFT: forward + backward of the cross-entropy of the scored tokens (τ = 1) in one call; gradients accumulate. */
  crossEntropyBackward(batch: PolicySequence[], options?: CrossEntropyOptions): Promise<CrossEntropyResult>;
  /** Gradient clipping + AdamW in place (+ zero the gradients). */
  step(options?: OptimizerOptions): Promise<StepResult>;
  zeroGrad(): Promise<void>;
  /** SPEC safetensors, atomic (temp file + rename), config + tokenizer in the metadata. */
  save(path: string, options?: SaveOptions): Promise<void>;
  /** AdamW moments + step count, next to the checkpoint (atomic). */
  saveOptimizer(path: string): Promise<void>;
  loadOptimizer(path: string): Promise<void>;
  /** The SPEC tensor table in flat-buffer order. */
  parameters(): ParameterInfo[];
  /** A copy of one tensor's values (`name` as in the checkpoint). */
  getParameter(name: string): Float32Array;
  setParameter(name: string, data: Float32Array): void;
  /** A copy of one tensor's accumulated gradient. */
  getGradient(name: string): Float32Array;
}
