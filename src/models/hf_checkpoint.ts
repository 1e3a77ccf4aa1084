// A Hugging Face model directory's weights: `model.safetensors`, or shards named by
// `model.safetensors.index.json` (`weight_map`: tensor → shard). Every shard's header is read and
// checked (against the index, and the index against the shards) before any tensor data; tensors are
// then read one at a time, so weights are never held twice. Errors name the file and the tensor.
import * as fs from 'fs';
import * as path from 'path';
import { openSafetensors, type SafetensorsFile } from '../io/safetensors_file';
import type { Dtype, TensorEntry } from '../io/safetensors';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';
/** An index is a few hundred kB for a 70B model; refuse anything far larger before parsing it. */
const MAX_INDEX_BYTES = 64 << 20;
const MAX_SHARDS = 4096;

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

export interface HfTensor {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** The shard holding it. */
  file: string;
}

export interface HfCheckpoint {
  readonly dir: string;
  /** Every tensor of the checkpoint, by name. */
  readonly tensors: ReadonlyMap<string, HfTensor>;
  /** A tensor's values as float32 (F32, BF16, F16). */
  readFloat32(name: string): Promise<Float32Array>;
  /** A BF16 tensor's raw bits (other dtypes: an error). */
  readBf16(name: string): Promise<Uint16Array>;
  close(): Promise<void>;
}

/** Shard file names: plain names inside the directory (an index is untrusted input). */
function shardPath(dir: string, name: unknown, index: string): string {
  if (typeof name !== 'string' || name === '' || name !== path.basename(name) || name === '.' || name === '..') {
    throw new CheckpointError(`${index}: shard ${JSON.stringify(name)} is not a file name inside the model directory`);
  }
  return path.join(dir, name);
}

function readIndex(file: string): Record<string, string> {
  const size = fs.statSync(file).size;
  if (size > MAX_INDEX_BYTES) throw new CheckpointError(`${file}: ${size} bytes, more than an index can need (${MAX_INDEX_BYTES})`);
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new CheckpointError(`${file}: not valid JSON (${(err as Error).message})`);
  }
  const map = (json as { weight_map?: unknown } | null)?.weight_map;
  if (!map || typeof map !== 'object' || Array.isArray(map)) throw new CheckpointError(`${file}: no "weight_map" object`);
  return map as Record<string, string>;
}

/** Opens the weights of the model directory `dir` and checks the shards against the index. */
export async function openHfCheckpoint(dir: string): Promise<HfCheckpoint> {
  const index = path.join(dir, INDEX_FILE);
  const single = path.join(dir, SINGLE_FILE);
  let expected: Map<string, string> | undefined; // tensor → shard path, from the index
  let shards: string[];
  if (fs.existsSync(index)) {
    const map = readIndex(index);
    expected = new Map(Object.entries(map).map(([t, s]) => [t, shardPath(dir, s, index)]));
    shards = [...new Set(expected.values())];
    if (shards.length > MAX_SHARDS) throw new CheckpointError(`${index}: ${shards.length} shards, more than ${MAX_SHARDS}`);
    for (const s of shards) {
      if (!fs.existsSync(s)) {
        const t = [...expected].find(([, f]) => f === s)![0];
        throw new CheckpointError(`${index}: shard ${path.basename(s)} (holding '${t}' among others) is missing from ${dir}`);
      }
    }
  } else if (fs.existsSync(single)) shards = [single];
  else throw new CheckpointError(`${dir}: no ${SINGLE_FILE} and no ${INDEX_FILE} (is this a Hugging Face model directory?)`);

  const open: SafetensorsFile[] = [];
  const closeAll = async (): Promise<void> => {
    await Promise.all(open.map((f) => f.close()));
  };
  try {
    const tensors = new Map<string, HfTensor>();
    const where = new Map<string, SafetensorsFile>();
    for (const s of shards) {
      const f = await openSafetensors(s);
      open.push(f);
      for (const [name, e] of f.header.tensors as Map<string, TensorEntry>) {
        const prev = tensors.get(name);
        if (prev) throw new CheckpointError(`${s}: tensor '${name}' is also in ${prev.file}`);
        const named = expected?.get(name);
        if (expected && named !== s) {
          throw new CheckpointError(named ? `${s}: tensor '${name}' is here but ${INDEX_FILE} puts it in ${path.basename(named)}` : `${s}: tensor '${name}' is not in ${INDEX_FILE}`);
        }
        tensors.set(name, { name, dtype: e.dtype, shape: e.shape, file: s });
        where.set(name, f);
      }
    }
    if (expected) {
      for (const [name, s] of expected) if (!tensors.has(name)) throw new CheckpointError(`${index}: tensor '${name}' is not in its shard ${path.basename(s)}`);
    }
    const shardOf = (name: string): SafetensorsFile => {
      const f = where.get(name);
      if (!f) throw new CheckpointError(`${dir}: no tensor '${name}'`);
      return f;
    };
    return {
      dir,
      tensors,
      readFloat32: async (name) => shardOf(name).readFloat32(name),
      readBf16: async (name) => shardOf(name).readBf16(name),
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
