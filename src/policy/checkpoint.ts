// Reading medgym-vlm checkpoints and optimizer states as untrusted files: the header, the config it
// names, the tensor names, shapes and dtypes, and the parameter count the config implies (against
// `maxParams` and the machine's RAM) are all checked before any allocation proportional to what the
// file claims; then the tensors are read one at a time. Every error names the file.
import { openSafetensors, type SafetensorsFile } from '../io/safetensors_file';
import { nativePolicyFunctions, type RawParamInfo } from '../native/policy';
import { IMAGE_ID, SPECIAL_TOKENS } from '../tokenizer';
import { configFromJson } from './presets';
import type { PolicyConfig } from './types';

/** Header limits of a medgym checkpoint (its header is a few kB). */
export const CHECKPOINT_LIMITS = { maxHeaderBytes: 4 * 1024 * 1024, maxTensors: 20_000 };

/** Default ceiling on the parameters a checkpoint's config may ask for (2^31 ≈ 2.1B). */
export const DEFAULT_MAX_PARAMS = 2 ** 31;

/** An error about one file: the message starts with the path; the class of the cause is kept. */
function inFile<E extends Error>(file: string, err: E): E {
  if (!err.message.startsWith(file)) err.message = `${file}: ${err.message}`;
  return err;
}

export interface OpenCheckpoint {
  file: SafetensorsFile;
  config: PolicyConfig;
  /** The tensor table of `config` (SPEC order), every entry present in the file with its shape. */
  table: RawParamInfo[];
}

/** Opens a policy checkpoint and checks everything but the values; the caller reads the tensors and closes it. */
export async function openPolicyCheckpoint(path: string, maxParams = DEFAULT_MAX_PARAMS): Promise<OpenCheckpoint> {
  const file = await openSafetensors(path, CHECKPOINT_LIMITS);
  try {
    const { metadata, tensors } = file.header;
    if (typeof metadata.config !== 'string') throw new RangeError(`${path}: metadata has no "config"`);
    const config = configFromJson(metadata.config, path);
    checkTokenizer(path, metadata.tokenizer);
    let table: RawParamInfo[];
    try {
      table = nativePolicyFunctions().policyConfigLayout({ ...config, imageId: IMAGE_ID, maxParams });
    } catch (err) {
      throw inFile(path, err as Error);
    }
    const expected = new Set(table.map((t) => t.name));
    for (const name of tensors.keys()) if (!expected.has(name)) throw new RangeError(`${path}: unexpected tensor '${name}' for this config`);
    for (const t of table) {
      const e = tensors.get(t.name);
      if (!e) throw new RangeError(`${path}: missing tensor '${t.name}'`);
      if (e.shape.length !== t.shape.length || e.shape.some((s, i) => s !== t.shape[i])) {
        throw new RangeError(`${path}: tensor '${t.name}' has shape [${e.shape}] but the config needs [${t.shape}]`);
      }
      if (e.dtype !== 'F32' && e.dtype !== 'BF16') throw new RangeError(`${path}: tensor '${t.name}' has dtype ${e.dtype} (F32 or BF16 expected)`);
    }
    return { file, config, table };
  } catch (err) {
    await file.close();
    throw err;
  }
}

function checkTokenizer(path: string, text: string | undefined): void {
  if (text === undefined) return;
  let list: unknown;
  try {
    list = JSON.parse(text);
  } catch {
    throw new RangeError(`${path}: metadata "tokenizer" is not valid JSON`);
  }
  // compared as parsed JSON, so other writers' whitespace (Python's json.dumps) is fine
  if (!Array.isArray(list) || list.length !== SPECIAL_TOKENS.length || list.some((t, i) => t !== SPECIAL_TOKENS[i])) {
    throw new RangeError(`${path}: metadata "tokenizer" (${text.slice(0, 200)}) differs from this tokenizer's special tokens`);
  }
}

/** A tensor's values, refused when one is NaN/Inf (or, with `nonNegative`, below 0). */
export async function readFiniteTensor(file: SafetensorsFile, name: string, nonNegative = false): Promise<Float32Array> {
  const data = await file.readFloat32(name);
  for (let i = 0; i < data.length; i++) {
    const x = data[i];
    if (!Number.isFinite(x) || (nonNegative && x < 0)) throw new RangeError(`${file.path}: tensor '${name}' holds ${nonNegative && Number.isFinite(x) ? 'a negative' : 'a non-finite'} value at ${i}`);
  }
  return data;
}

export interface OptimizerState {
  step: number;
  expAvg: Float32Array;
  expAvgSq: Float32Array;
}

/** Reads an AdamW state written by saveOptimizer for a model of `numParams` parameters. */
export async function readOptimizerState(path: string, numParams: number): Promise<OptimizerState> {
  const file = await openSafetensors(path, CHECKPOINT_LIMITS);
  try {
    const { metadata, tensors } = file.header;
    if (metadata.format !== 'medgym-adamw') throw new RangeError(`${path}: not a medgym optimizer file (metadata "format")`);
    const step = Number(metadata.step);
    if (!Number.isSafeInteger(step) || step < 1) throw new RangeError(`${path}: metadata "step" must be a positive integer`);
    if (Number(metadata.num_params) !== numParams) throw new RangeError(`${path}: optimizer state for ${metadata.num_params} parameters, this model has ${numParams}`);
    const names = [...tensors.keys()].sort().join(',');
    if (names !== 'exp_avg,exp_avg_sq') throw new RangeError(`${path}: expected tensors exp_avg and exp_avg_sq but found ${names}`);
    for (const name of ['exp_avg', 'exp_avg_sq']) {
      const t = tensors.get(name)!;
      if (t.dtype !== 'F32' || t.shape.length !== 1 || t.shape[0] !== numParams) throw new RangeError(`${path}: '${name}' must be F32 [${numParams}]`);
    }
    return { step, expAvg: await readFiniteTensor(file, 'exp_avg'), expAvgSq: await readFiniteTensor(file, 'exp_avg_sq', true) };
  } finally {
    await file.close();
  }
}

/** Wraps an error raised while building a model for `path` so that it names the file. */
export function checkpointError(path: string, err: unknown): unknown {
  return err instanceof Error ? inFile(path, err) : err;
}
