// NativePolicy: the SPEC §1 model owned by the native addon (native/model), with a validated, typed,
// async face. Calls on one model run one at a time (a promise queue); weights live natively until
// dispose(). Batches are packed by ./batch, sessions live in ./session, checkpoints are read by
// ./checkpoint. See docs/policy.md.
import { nativePolicyFunctions, type NativePolicyFunctions, type PolicyHandle } from '../native/policy';
import { writeSafetensors, type TensorToWrite } from '../io/safetensors';
import { IMAGE_ID, SPECIAL_TOKENS } from '../tokenizer';
import { isIntArrayLike, isTyped, packBatch } from './batch';
import { checkpointError, openPolicyCheckpoint, readFiniteTensor, readOptimizerState } from './checkpoint';
import { resolveDevice, type ResolvedDevice } from './device';
import { rawPrefixGroups } from './prefix';
import { configToJson, resolveConfig } from './presets';
import { NativeGenerationSession } from './session';
import type {
  BackwardInput,
  CreateOptions,
  CrossEntropyOptions,
  CrossEntropyResult,
  ForwardOptions,
  ForwardResult,
  GenerationSession,
  LoadOptions,
  OptimizerOptions,
  ParameterInfo,
  PolicyConfig,
  PolicyDeviceInfo,
  PolicyPreset,
  PolicySequence,
  SaveOptions,
  SessionOptions,
  StepResult,
  TrainablePolicy,
} from './types';

export { DEFAULT_BANNED_TOKENS, DEFAULT_STOP_TOKENS } from './session';
export { packBatch } from './batch';

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
  /** The model's architecture (as created or loaded). */
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
  static async load(path: string, options: LoadOptions = {}): Promise<NativePolicy> {
    const dev = resolveDevice(options);
    // Everything the file claims is checked before the model (sized by its config) is allocated.
    const { file, config, table } = await openPolicyCheckpoint(path, options.maxParams);
    let policy: NativePolicy | undefined;
    try {
      const raw = await nativePolicyFunctions().policyCreateAsync({ ...config, imageId: IMAGE_ID, init: false, device: dev.device, dtype: dev.dtype, maxParams: options.maxParams });
      policy = new NativePolicy(config, raw, dev);
      for (const t of table) {
        policy.fns.policyWrite({ model: policy.h, which: 'params', offset: t.offset, data: await readFiniteTensor(file, t.name) });
      }
      return policy;
    } catch (err) {
      policy?.dispose();
      throw checkpointError(path, err);
    } finally {
      await file.close();
    }
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

  get maxSeq(): number {
    return this.config.maxSeq;
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
      const st = await readOptimizerState(path, this.numParams);
      this.fns.policyWrite({ model: this.h, which: 'm', data: st.expAvg });
      this.fns.policyWrite({ model: this.h, which: 'v', data: st.expAvgSq });
      this.fns.policySetStep({ model: this.h, step: st.step });
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
