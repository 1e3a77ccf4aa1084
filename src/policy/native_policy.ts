// NativePolicy: the SPEC §1 model owned by the native addon (native/model), with a validated, typed,
// async face. Calls on one model run one at a time (a promise queue); weights live natively until
// dispose(). See docs/policy.md.
import * as fs from 'fs';
import { nativePolicyFunctions, type NativePolicyFunctions, type PolicyHandle, type RawBatch, type SessionHandle } from '../native/policy';
import { parseHeader, toFloat32, writeSafetensors, type LoadedTensor, type TensorToWrite } from '../io/safetensors';
import { BOS_ID, EOS_ID, IMAGE_ID, PAD_ID, SPECIAL_TOKENS, TOOL_CALL_END_ID, TOOL_RESPONSE_ID, VOCAB_SIZE, decode } from '../tokenizer';
import type { ViewImage } from '../tools/image';
import { resolveDevice, type ResolvedDevice } from './device';
import { rawPrefixGroups } from './prefix';
import { configFromJson, configToJson, resolveConfig } from './presets';
import type {
  AppendInput,
  BackwardInput,
  CreateOptions,
  CrossEntropyOptions,
  CrossEntropyResult,
  DeviceOptions,
  ForwardOptions,
  ForwardResult,
  GenerateOptions,
  GenerateResult,
  GenerationSession,
  OptimizerOptions,
  ParameterInfo,
  PolicyConfig,
  PolicyDeviceInfo,
  PolicyPreset,
  PolicySequence,
  SampleKey,
  SaveOptions,
  SessionOptions,
  SessionSequenceInput,
  StepResult,
  TrainablePolicy,
} from './types';

/** Never sampled unless a bannedTokens list replaces this one (<|image|> is never sampled at all). */
export const DEFAULT_BANNED_TOKENS: readonly number[] = [BOS_ID, PAD_ID, IMAGE_ID, TOOL_RESPONSE_ID];
/** End a generated segment: <|eos|> and </tool_call> (SPEC §3). */
export const DEFAULT_STOP_TOKENS: readonly number[] = [EOS_ID, TOOL_CALL_END_ID];

const CHECKPOINT_LIMITS = { maxHeaderBytes: 4 * 1024 * 1024, maxTensors: 20_000 };

/** Reads a safetensors file without blocking the event loop, validating the header (limits, dtypes, offsets). */
async function readChecked(path: string): Promise<{ metadata: Record<string, string>; tensors: Map<string, LoadedTensor> }> {
  const fh = await fs.promises.open(path, 'r');
  let buf: Buffer;
  let header;
  try {
    const size = (await fh.stat()).size;
    // The header is validated (length limit, JSON, dtypes, shapes, offsets against the file size)
    // before the data section is read.
    const lenBytes = Buffer.alloc(Math.min(8, size));
    await fh.read(lenBytes, 0, lenBytes.length, 0);
    const n = lenBytes.length === 8 ? Number(lenBytes.readBigUInt64LE(0)) : 0;
    const headLen = Math.min(size, 8 + Math.min(n, CHECKPOINT_LIMITS.maxHeaderBytes));
    const head = Buffer.alloc(headLen);
    await fh.read(head, 0, headLen, 0);
    header = parseHeader(head, size, path, CHECKPOINT_LIMITS);
    buf = Buffer.alloc(size);
    await fh.read(buf, 0, size, 0);
  } finally {
    await fh.close();
  }
  const tensors = new Map<string, LoadedTensor>();
  for (const [name, t] of header.tensors) {
    const begin = header.dataStart + t.dataOffsets[0];
    // a copy: its own ArrayBuffer, so typed views are aligned whatever the header length was
    tensors.set(name, { dtype: t.dtype, shape: t.shape, bytes: new Uint8Array(buf.subarray(begin, header.dataStart + t.dataOffsets[1])) });
  }
  return { metadata: header.metadata, tensors };
}

/** Typed-array check that works across realms (jest's vm sandbox, worker threads). */
function isTyped(x: unknown, type: 'Float32Array' | 'Uint8Array'): boolean {
  return ArrayBuffer.isView(x) && Object.prototype.toString.call(x) === `[object ${type}]`;
}

function isIntArrayLike(x: unknown): x is ArrayLike<number> {
  return !!x && typeof x === 'object' && typeof (x as { length?: unknown }).length === 'number';
}

/** Packs sequences into the addon's ragged batch, validating every field with its name. */
export function packBatch(cfg: PolicyConfig, seqs: { tokens: ArrayLike<number>; images?: ViewImage[]; mask?: ArrayLike<number> }[], what: string, withMask: boolean): RawBatch {
  if (!Array.isArray(seqs)) throw new TypeError(`Expected an Array of sequences for \`${what}\``);
  if (seqs.length === 0) throw new RangeError(`Expected at least one sequence in \`${what}\``);
  const lengths = new Int32Array(seqs.length);
  let total = 0;
  let nImages = 0;
  const np = (cfg.imageSize / cfg.patch) ** 2;
  seqs.forEach((s, i) => {
    if (!s || typeof s !== 'object') throw new TypeError(`Expected an object for \`${what}[${i}]\``);
    if (!isIntArrayLike(s.tokens)) throw new TypeError(`Expected an array of token ids for \`${what}[${i}].tokens\``);
    lengths[i] = s.tokens.length;
    total += s.tokens.length;
    let imgs = 0;
    let expanded = 0;
    for (let k = 0; k < s.tokens.length; k++) {
      const id = s.tokens[k];
      if (!Number.isInteger(id) || id < 0 || id >= cfg.vocabSize) {
        throw new RangeError(`Expected token ids in [0, ${cfg.vocabSize}) for \`${what}[${i}].tokens\` but position ${k} is ${id}`);
      }
      if (id === IMAGE_ID) imgs++;
      expanded += id === IMAGE_ID ? np : 1;
    }
    const images = s.images ?? [];
    if (!Array.isArray(images)) throw new TypeError(`Expected an Array of views for \`${what}[${i}].images\``);
    if (images.length !== imgs) {
      throw new RangeError(`Expected ${imgs} images (one per <|image|>) for \`${what}[${i}].images\` but received ${images.length}`);
    }
    if (withMask && expanded > cfg.maxSeq) {
      throw new RangeError(`\`${what}[${i}].tokens\` expand to ${expanded} positions (each <|image|> is ${np}), more than maxSeq ${cfg.maxSeq}`);
    }
    if (s.mask !== undefined && (!isIntArrayLike(s.mask) || s.mask.length !== s.tokens.length)) {
      throw new RangeError(`Expected \`${what}[${i}].mask\` of length ${s.tokens.length}`);
    }
    nImages += imgs;
  });
  const tokens = new Int32Array(total);
  const perImage = cfg.imageSize * cfg.imageSize * cfg.channels;
  const images = new Uint8Array(nImages * perImage);
  const anyMask = withMask && seqs.some((s) => s.mask !== undefined);
  const mask = anyMask ? new Int32Array(total).fill(1) : undefined;
  let t = 0;
  let im = 0;
  seqs.forEach((s, i) => {
    if (mask && s.mask) for (let k = 0; k < s.tokens.length; k++) mask[t + k] = s.mask[k] ? 1 : 0;
    for (let k = 0; k < s.tokens.length; k++) tokens[t++] = s.tokens[k];
    (s.images ?? []).forEach((v, j) => {
      writeView(cfg, v, images, im * perImage, `${what}[${i}].images[${j}]`);
      im++;
    });
  });
  return { tokens, lengths, images, nImages, mask };
}

/** Copies a view into the model's layout (HWC uint8), replicating a 1-channel view to 3 channels. */
function writeView(cfg: PolicyConfig, v: ViewImage, out: Uint8Array, at: number, name: string): void {
  if (!v || typeof v !== 'object' || !isTyped(v.data, 'Uint8Array')) throw new TypeError(`Expected a ViewImage with Uint8Array data for \`${name}\``);
  if (v.width !== cfg.imageSize || v.height !== cfg.imageSize) {
    throw new RangeError(`Expected a ${cfg.imageSize}×${cfg.imageSize} view for \`${name}\` but received ${v.width}×${v.height}`);
  }
  if (!(v.channels === cfg.channels || (v.channels === 1 && cfg.channels === 3))) {
    throw new RangeError(`Expected a view with ${cfg.channels} channel(s) for \`${name}\` but received ${v.channels}`);
  }
  const n = cfg.imageSize * cfg.imageSize;
  if (v.data.length !== n * v.channels) throw new RangeError(`Expected ${n * v.channels} bytes in \`${name}.data\` but received ${v.data.length}`);
  if (v.channels === cfg.channels) out.set(v.data, at);
  else for (let p = 0; p < n; p++) out[at + 3 * p] = out[at + 3 * p + 1] = out[at + 3 * p + 2] = v.data[p];
}

function checkSeed(seed: number | undefined): number {
  const s = seed ?? 0;
  if (!Number.isSafeInteger(s) || s < 0) throw new RangeError(`Expected a non-negative integer for \`seed\` but received ${s}`);
  return s;
}

function checkNumber(v: unknown, name: string, lo: number, hi: number): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new TypeError(`Expected a finite number for \`${name}\` but received ${String(v)}`);
  if (v < lo || v > hi) throw new RangeError(`Expected \`${name}\` in [${lo}, ${hi}] but received ${v}`);
}

export class NativePolicy implements TrainablePolicy {
  readonly config: PolicyConfig;
  readonly numParams: number;
  readonly imageTokens: number;
  private handle: PolicyHandle | null;
  private readonly fns: NativePolicyFunctions;
  private readonly table: ParameterInfo[];
  private readonly byName: Map<string, ParameterInfo>;
  private queue: Promise<unknown> = Promise.resolve();
  private pendingLengths: number[] | null = null;
  private sessions = new Set<NativeGenerationSession>();
  private readonly where: PolicyDeviceInfo;

  private constructor(config: PolicyConfig, handle: PolicyHandle, device: ResolvedDevice) {
    this.fns = nativePolicyFunctions();
    this.config = config;
    this.handle = handle;
    this.where = { ...device, name: this.fns.policyDevice({ model: handle }).name };
    this.table = this.fns.policyLayout({ model: this.handle }).map((t) => ({ ...t }));
    this.byName = new Map(this.table.map((t) => [t.name, t]));
    this.numParams = this.table.reduce((a, t) => a + t.size, 0);
    this.imageTokens = (config.imageSize / config.patch) ** 2;
  }

  /**
   * A new model with GPT-2 initialization. `config`: a preset name (default 'small', the CPU default),
   * or a config whose missing fields come from `preset` (default 'small').
   */
  static create(config: PolicyPreset | (Partial<PolicyConfig> & { preset?: PolicyPreset }) = 'small', options: CreateOptions = {}): NativePolicy {
    const cfg = resolveConfig(config);
    const dev = resolveDevice(options);
    const handle = nativePolicyFunctions().policyCreate({ ...cfg, imageId: IMAGE_ID, seed: checkSeed(options.seed), device: dev.device, dtype: dev.dtype });
    return new NativePolicy(cfg, handle, dev);
  }

  /** create() with the initialization off the event loop (base: seconds). */
  static async createAsync(config: PolicyPreset | (Partial<PolicyConfig> & { preset?: PolicyPreset }) = 'small', options: CreateOptions = {}): Promise<NativePolicy> {
    const cfg = resolveConfig(config);
    const dev = resolveDevice(options);
    const handle = await nativePolicyFunctions().policyCreateAsync({ ...cfg, imageId: IMAGE_ID, seed: checkSeed(options.seed), device: dev.device, dtype: dev.dtype });
    return new NativePolicy(cfg, handle, dev);
  }

  /**
   * Loads a SPEC checkpoint. Rejects (with the file and the problem in the message) a truncated file,
   * a hostile header, unknown/missing tensor names, wrong shapes or dtypes, a config or tokenizer that
   * does not match, and non-finite weights. `options.device` / `dtype`: as create() (the weights
   * are read on the host and copied to the device, so a checkpoint means the same on every device).
   */
  static async load(path: string, options: DeviceOptions = {}): Promise<NativePolicy> {
    const dev = resolveDevice(options);
    const { metadata, tensors } = await readChecked(path);
    if (typeof metadata.config !== 'string') throw new RangeError(`${path}: metadata has no "config"`);
    const config = configFromJson(metadata.config, path);
    if (metadata.tokenizer !== undefined) {
      let list: unknown;
      try {
        list = JSON.parse(metadata.tokenizer);
      } catch {
        throw new RangeError(`${path}: metadata "tokenizer" is not valid JSON`);
      }
      // compared as parsed JSON, so other writers' whitespace (Python's json.dumps) is fine
      if (!Array.isArray(list) || list.length !== SPECIAL_TOKENS.length || list.some((t, i) => t !== SPECIAL_TOKENS[i])) {
        throw new RangeError(`${path}: metadata "tokenizer" (${metadata.tokenizer.slice(0, 200)}) differs from this tokenizer's special tokens`);
      }
    }
    const raw = await nativePolicyFunctions().policyCreateAsync({ ...config, imageId: IMAGE_ID, init: false, device: dev.device, dtype: dev.dtype });
    const policy = new NativePolicy(config, raw, dev);
    try {
      for (const name of tensors.keys()) {
        if (!policy.byName.has(name)) throw new RangeError(`${path}: unexpected tensor '${name}' for this config`);
      }
      for (const t of policy.table) {
        const e = tensors.get(t.name);
        if (!e) throw new RangeError(`${path}: missing tensor '${t.name}'`);
        if (e.shape.length !== t.shape.length || e.shape.some((s, i) => s !== t.shape[i])) {
          throw new RangeError(`${path}: tensor '${t.name}' has shape [${e.shape}] but the config needs [${t.shape}]`);
        }
        if (e.dtype !== 'F32' && e.dtype !== 'BF16') throw new RangeError(`${path}: tensor '${t.name}' has dtype ${e.dtype} (F32 or BF16 expected)`);
        const data = toFloat32(e, t.name);
        for (let i = 0; i < data.length; i++) {
          if (!Number.isFinite(data[i])) throw new RangeError(`${path}: tensor '${t.name}' holds a non-finite value at ${i}`);
        }
        policy.fns.policyWrite({ model: policy.h, which: 'params', offset: t.offset, data });
      }
    } catch (err) {
      policy.dispose();
      throw err;
    }
    return policy;
  }

  private get h(): PolicyHandle {
    if (!this.handle) throw new Error('NativePolicy: the model was disposed');
    return this.handle;
  }

  /** Runs `fn` after every earlier call on this model has settled. */
  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** 'cpu' or 'cuda': where this model's weights live and its calls run. */
  get device(): 'cpu' | 'cuda' {
    return this.where.device;
  }

  /** Where the model runs, in what precision, what was asked for and why this device (e.g. 'auto' without a GPU). */
  get deviceInfo(): PolicyDeviceInfo {
    return { ...this.where };
  }

  get stepCount(): number {
    return this.fns.policyGetStep({ model: this.h });
  }

  forward(batch: PolicySequence[], options: ForwardOptions = {}): Promise<ForwardResult> {
    return this.enqueue(async () => {
      checkNumber(options.temperature, 'temperature', 1e-6, 1e6);
      const raw = packBatch(this.config, batch, 'batch', true);
      const requireGrad = options.requireGrad ?? false;
      const perImage = this.config.imageSize * this.config.imageSize * this.config.channels;
      const shared = options.prefixGroups === undefined ? {} : rawPrefixGroups(raw, perImage, options.prefixGroups);
      const r = await this.fns.policyForwardAsync({
        model: this.h,
        ...raw,
        ...shared,
        temperature: options.temperature ?? 1,
        entropy: options.entropy ?? true,
        requireGrad,
      });
      this.pendingLengths = requireGrad ? Array.from(raw.lengths) : null;
      const logp: Float32Array[] = [];
      const entropy: Float32Array[] = [];
      let at = 0;
      for (const n of raw.lengths) {
        logp.push(r.logp.subarray(at, at + n));
        entropy.push(r.entropy.subarray(at, at + n));
        at += n;
      }
      let positions = 0;
      for (let i = 0; i < raw.tokens.length; i++) positions += raw.tokens[i] === IMAGE_ID ? this.imageTokens : 1;
      return { logp, entropy, positions, rows: r.rows, scored: r.scored };
    });
  }

  backward(grad: BackwardInput): Promise<void> {
    return this.enqueue(async () => {
      const lens = this.pendingLengths;
      if (!lens) throw new RangeError('backward: no saved activations; call forward(batch, { requireGrad: true }) first');
      const flatten = (arrs: ArrayLike<number>[] | undefined, name: string): Float32Array | undefined => {
        if (arrs === undefined) return undefined;
        if (!Array.isArray(arrs) || arrs.length !== lens.length) throw new RangeError(`Expected ${lens.length} arrays for \`${name}\` (one per sequence of the forward)`);
        const total = lens.reduce((a, b) => a + b, 0);
        const out = new Float32Array(total);
        let at = 0;
        arrs.forEach((a, i) => {
          if (!isIntArrayLike(a) || a.length !== lens[i]) throw new RangeError(`Expected \`${name}[${i}]\` of length ${lens[i]} but received ${isIntArrayLike(a) ? a.length : typeof a}`);
          for (let k = 0; k < a.length; k++) {
            if (!Number.isFinite(a[k])) throw new RangeError(`Expected finite values in \`${name}[${i}]\` but position ${k} is ${a[k]}`);
            out[at + k] = a[k];
          }
          at += lens[i];
        });
        return out;
      };
      const dlogp = flatten(grad?.dlogp, 'dlogp');
      if (!dlogp) throw new TypeError('Expected `dlogp` (one array per sequence)');
      const dentropy = flatten(grad.dentropy, 'dentropy');
      this.pendingLengths = null;
      await this.fns.policyBackwardAsync({ model: this.h, total: dlogp.length, dlogp, dentropy });
    });
  }

  crossEntropyBackward(batch: PolicySequence[], options: CrossEntropyOptions = {}): Promise<CrossEntropyResult> {
    return this.enqueue(async () => {
      checkNumber(options.scale, 'scale', -1e30, 1e30);
      if (options.reduction !== undefined && options.reduction !== 'mean' && options.reduction !== 'sum') {
        throw new RangeError(`Expected 'mean' or 'sum' for \`reduction\` but received ${String(options.reduction)}`);
      }
      const raw = packBatch(this.config, batch, 'batch', true);
      this.pendingLengths = null;
      return this.fns.policyCrossEntropyAsync({ model: this.h, ...raw, reduction: options.reduction ?? 'mean', scale: options.scale ?? 1 });
    });
  }

  step(options: OptimizerOptions = {}): Promise<StepResult> {
    return this.enqueue(async () => {
      checkNumber(options.lr, 'lr', 0, 1e3);
      checkNumber(options.beta1, 'beta1', 0, 0.999999999);
      checkNumber(options.beta2, 'beta2', 0, 0.999999999);
      checkNumber(options.eps, 'eps', 0, 1);
      checkNumber(options.weightDecay, 'weightDecay', 0, 1e3);
      const maxGradNorm = options.maxGradNorm === Infinity ? 0 : options.maxGradNorm;
      checkNumber(maxGradNorm, 'maxGradNorm', 0, 1e300);
      return this.fns.policyStepAsync({ model: this.h, ...options, maxGradNorm: maxGradNorm ?? 1 });
    });
  }

  zeroGrad(): Promise<void> {
    return this.enqueue(() => this.fns.policyZeroGradAsync({ model: this.h }));
  }

  createSession(options: SessionOptions = {}): GenerationSession {
    const seed = options.seed ?? 0;
    if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`Expected a non-negative integer for \`seed\` but received ${seed}`);
    const handle = this.fns.sessionCreate({ model: this.h, kvCache: options.kvCache ?? true, seed, specials: [...SPECIAL_TOKENS] });
    const s = new NativeGenerationSession(this, this.fns, handle, seed, (fn) => this.enqueue(fn));
    this.sessions.add(s);
    return s;
  }

  /** @internal */
  forgetSession(s: NativeGenerationSession): void {
    this.sessions.delete(s);
  }

  save(path: string, options: SaveOptions = {}): Promise<void> {
    return this.enqueue(async () => {
      const dtype = options.dtype ?? 'F32';
      if (dtype !== 'F32' && dtype !== 'BF16') throw new RangeError(`Expected 'F32' or 'BF16' for \`dtype\` but received ${String(dtype)}`);
      const all = this.fns.policyRead({ model: this.h, which: 'params' });
      const tensors: TensorToWrite[] = this.table.map((t) => ({ name: t.name, shape: t.shape, data: all.subarray(t.offset, t.offset + t.size), dtype }));
      await writeSafetensors(path, tensors, { format: 'medgym-vlm', config: configToJson(this.config), tokenizer: JSON.stringify(SPECIAL_TOKENS) });
    });
  }

  saveOptimizer(path: string): Promise<void> {
    return this.enqueue(async () => {
      const step = this.fns.policyGetStep({ model: this.h });
      if (step === 0) throw new RangeError('saveOptimizer: no optimizer state yet (no step() taken)');
      const m = this.fns.policyRead({ model: this.h, which: 'm' });
      const v = this.fns.policyRead({ model: this.h, which: 'v' });
      await writeSafetensors(path, [
        { name: 'exp_avg', shape: [m.length], data: m },
        { name: 'exp_avg_sq', shape: [v.length], data: v },
      ], { format: 'medgym-adamw', step: String(step), num_params: String(this.numParams), config: configToJson(this.config) });
    });
  }

  loadOptimizer(path: string): Promise<void> {
    return this.enqueue(async () => {
      const { metadata, tensors } = await readChecked(path);
      if (metadata.format !== 'medgym-adamw') throw new RangeError(`${path}: not a medgym optimizer file (metadata "format")`);
      const step = Number(metadata.step);
      if (!Number.isSafeInteger(step) || step < 1) throw new RangeError(`${path}: metadata "step" must be a positive integer`);
      if (Number(metadata.num_params) !== this.numParams) throw new RangeError(`${path}: optimizer state for ${metadata.num_params} parameters, this model has ${this.numParams}`);
      const names = [...tensors.keys()].sort().join(',');
      if (names !== 'exp_avg,exp_avg_sq') throw new RangeError(`${path}: expected tensors exp_avg and exp_avg_sq but found ${names}`);
      const data: Record<string, Float32Array> = {};
      for (const name of ['exp_avg', 'exp_avg_sq']) {
        const t = tensors.get(name)!;
        if (t.dtype !== 'F32' || t.shape.length !== 1 || t.shape[0] !== this.numParams) throw new RangeError(`${path}: '${name}' must be F32 [${this.numParams}]`);
        data[name] = toFloat32(t, name);
        for (let i = 0; i < data[name].length; i++) {
          if (!Number.isFinite(data[name][i]) || (name === 'exp_avg_sq' && data[name][i] < 0)) throw new RangeError(`${path}: '${name}' holds an invalid value at ${i}`);
        }
      }
      this.fns.policyWrite({ model: this.h, which: 'm', data: data.exp_avg });
      this.fns.policyWrite({ model: this.h, which: 'v', data: data.exp_avg_sq });
      this.fns.policySetStep({ model: this.h, step });
    });
  }

  parameters(): ParameterInfo[] {
    return this.table.map((t) => ({ ...t, shape: [...t.shape] }));
  }

  private info(name: string): ParameterInfo {
    const t = this.byName.get(name);
    if (!t) throw new RangeError(`Unknown parameter \`name\` '${name}'`);
    return t;
  }

  getParameter(name: string): Float32Array {
    const t = this.info(name);
    return this.fns.policyRead({ model: this.h, which: 'params', offset: t.offset, size: t.size });
  }

  setParameter(name: string, data: Float32Array): void {
    const t = this.info(name);
    if (!isTyped(data, 'Float32Array') || data.length !== t.size) throw new RangeError(`Expected Float32Array of length ${t.size} for \`data\` of '${name}'`);
    this.fns.policyWrite({ model: this.h, which: 'params', offset: t.offset, data });
  }

  getGradient(name: string): Float32Array {
    const t = this.info(name);
    return this.fns.policyRead({ model: this.h, which: 'grads', offset: t.offset, size: t.size });
  }

  dispose(): void {
    if (!this.handle) return;
    for (const s of [...this.sessions]) s.dispose();
    this.fns.policyDispose({ model: this.handle });
    this.handle = null;
  }
}

type FullKey = Required<SampleKey>;
const KEY_FIELDS = ['seed', 'step', 'promptIndex', 'sampleIndex'] as const;

class NativeGenerationSession implements GenerationSession {
  private handle: SessionHandle | null;
  private added = 0;
  /** Stream key of each live sequence (fork's defaults). */
  private keys = new Map<number, FullKey>();
  constructor(
    private readonly policy: NativePolicy,
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
      const key = (i: number, k: 'seed' | 'step' | 'promptIndex' | 'sampleIndex', dflt: number): number => {
        const v = seqs[i].key?.[k] ?? dflt;
        if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`Expected a non-negative integer for \`seqs[${i}].key.${k}\` but received ${v}`);
        return v;
      };
      const n = seqs.length;
      const seeds = Array.from({ length: n }, (_, i) => key(i, 'seed', this.seed));
      const steps = Array.from({ length: n }, (_, i) => key(i, 'step', 0));
      const promptIndices = Array.from({ length: n }, (_, i) => key(i, 'promptIndex', this.added + i));
      const sampleIndices = Array.from({ length: n }, (_, i) => key(i, 'sampleIndex', 0));
      const ids = await this.fns.sessionAddAsync({ session: this.h, ...raw, seeds, steps, promptIndices, sampleIndices });
      this.added += n; // handles are assigned 0, 1, 2, ... in add order (calls are serialized)
      ids.forEach((id, i) => this.keys.set(id, { seed: seeds[i], step: steps[i], promptIndex: promptIndices[i], sampleIndex: sampleIndices[i] }));
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
