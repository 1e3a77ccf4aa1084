// safetensors reader/writer (https://huggingface.co/docs/safetensors): 8-byte little-endian header
// length, a JSON header {name: {dtype, shape, data_offsets}, __metadata__: {str: str}}, then the data.
// Reading validates everything a hostile or truncated file could get wrong before touching the data.
import * as fs from 'fs';
import { writeFileAtomic, writeFileAtomicSync } from './atomic';

export type Dtype = 'F32' | 'BF16' | 'F16' | 'F64' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

const DTYPE_BYTES: Record<Dtype, number> = { F64: 8, I64: 8, F32: 4, I32: 4, BF16: 2, F16: 2, I16: 2, I8: 1, U8: 1, BOOL: 1 };

export interface TensorEntry {
  dtype: Dtype;
  shape: number[];
  /** [begin, end) byte offsets into the data section. */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  metadata: Record<string, string>;
  tensors: Map<string, TensorEntry>;
  /** Byte offset of the data section in the file (8 + header length). */
  dataStart: number;
}

export interface ReadLimits {
  /** Largest JSON header accepted (default 100 MB, as the reference implementation). */
  maxHeaderBytes?: number;
  /** Most tensors accepted (default 100,000). */
  maxTensors?: number;
}

/** Largest JSON header accepted by default (100 MB, as the reference implementation). */
export const DEFAULT_MAX_HEADER = 100 * 1024 * 1024;

export class SafetensorsError extends Error {
  constructor(file: string, message: string, options?: { cause?: unknown }) {
    super(`${file}: ${message}`, options);
    this.name = 'SafetensorsError';
  }
}

const isSafeNonNegInt = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;

/** Parses and validates the header of a safetensors file of `fileSize` bytes whose first bytes are `head`. */
export function parseHeader(head: Uint8Array, fileSize: number, file = 'safetensors', limits: ReadLimits = {}): SafetensorsHeader {
  const maxHeader = limits.maxHeaderBytes ?? DEFAULT_MAX_HEADER;
  const maxTensors = limits.maxTensors ?? 100_000;
  if (fileSize < 8 || head.byteLength < 8) throw new SafetensorsError(file, `truncated: ${fileSize} bytes, too short for the 8-byte header length`);
  const n = Number(Buffer.from(head.buffer, head.byteOffset, 8).readBigUInt64LE(0));
  if (!Number.isSafeInteger(n) || n > maxHeader) throw new SafetensorsError(file, `header length ${n} exceeds the limit of ${maxHeader} bytes`);
  if (8 + n > fileSize) throw new SafetensorsError(file, `truncated: header length ${n} but the file has ${fileSize} bytes`);
  if (head.byteLength < 8 + n) throw new SafetensorsError(file, 'internal: header bytes not provided');
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(head.buffer, head.byteOffset + 8, n).toString('utf8'));
  } catch (err) {
    throw new SafetensorsError(file, `header is not valid JSON (${(err as Error).message})`);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new SafetensorsError(file, 'header must be a JSON object');
  const dataSize = fileSize - 8 - n;
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorEntry>();
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new SafetensorsError(file, '__metadata__ must be an object of strings');
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== 'string') throw new SafetensorsError(file, `__metadata__.${k} must be a string but is ${typeof v}`);
        metadata[k] = v;
      }
      continue;
    }
    if (tensors.size >= maxTensors) throw new SafetensorsError(file, `more than ${maxTensors} tensors`);
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!e || typeof e !== 'object') throw new SafetensorsError(file, `tensor '${name}' entry must be an object`);
    // Own keys only: `in` would accept "toString" or "constructor" from the prototype.
    if (typeof e.dtype !== 'string' || !Object.prototype.hasOwnProperty.call(DTYPE_BYTES, e.dtype)) throw new SafetensorsError(file, `tensor '${name}' has unsupported dtype ${JSON.stringify(e.dtype)}`);
    if (!Array.isArray(e.shape) || !e.shape.every(isSafeNonNegInt)) throw new SafetensorsError(file, `tensor '${name}' shape must be an array of non-negative integers`);
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isSafeNonNegInt) || offs[0] > offs[1]) {
      throw new SafetensorsError(file, `tensor '${name}' data_offsets must be [begin, end] with 0 <= begin <= end`);
    }
    const dtype = e.dtype as Dtype;
    const count = (e.shape as number[]).reduce((a, b) => a * b, 1);
    const bytes = count * DTYPE_BYTES[dtype];
    if (!Number.isSafeInteger(bytes) || bytes !== offs[1] - offs[0]) {
      throw new SafetensorsError(file, `tensor '${name}' has shape [${e.shape}] of ${dtype} (${bytes} bytes) but data_offsets span ${offs[1] - offs[0]} bytes`);
    }
    if (offs[1] > dataSize) throw new SafetensorsError(file, `truncated: tensor '${name}' ends at byte ${offs[1]} of a ${dataSize}-byte data section`);
    tensors.set(name, { dtype, shape: e.shape as number[], dataOffsets: [offs[0], offs[1]] });
  }
  // The format requires the tensors to tile the data section exactly: no overlaps, no holes.
  const spans = [...tensors.entries()].sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0] || a[1].dataOffsets[1] - b[1].dataOffsets[1]);
  let pos = 0;
  for (const [name, t] of spans) {
    if (t.dataOffsets[0] !== pos) {
      throw new SafetensorsError(file, `tensor '${name}' starts at byte ${t.dataOffsets[0]} but the previous tensor ends at ${pos} (${t.dataOffsets[0] < pos ? 'overlap' : 'hole'})`);
    }
    pos = t.dataOffsets[1];
  }
  if (pos !== dataSize) throw new SafetensorsError(file, `data section has ${dataSize} bytes but the tensors cover ${pos}`);
  return { metadata, tensors, dataStart: 8 + n };
}

export interface LoadedTensor {
  dtype: Dtype;
  shape: number[];
  /** The raw little-endian bytes (a copy owned by the caller). */
  bytes: Uint8Array;
}

/** Reads and validates a whole safetensors file. */
export function readSafetensors(file: string, limits: ReadLimits = {}): { metadata: Record<string, string>; tensors: Map<string, LoadedTensor> } {
  let buf: Buffer;
  try {
    // A FIFO or device would block the read (or never end): only regular files are read.
    if (!fs.statSync(file).isFile()) throw new Error('not a regular file');
    buf = fs.readFileSync(file);
  } catch (err) {
    throw new SafetensorsError(file, `cannot read (${err instanceof Error ? err.message : String(err)})`, { cause: err });
  }
  const header = parseHeader(buf, buf.byteLength, file, limits);
  const tensors = new Map<string, LoadedTensor>();
  for (const [name, t] of header.tensors) {
    const begin = header.dataStart + t.dataOffsets[0];
    tensors.set(name, { dtype: t.dtype, shape: t.shape, bytes: new Uint8Array(buf.buffer.slice(buf.byteOffset + begin, buf.byteOffset + begin + t.dataOffsets[1] - t.dataOffsets[0])) });
  }
  return { metadata: header.metadata, tensors };
}

/** Decodes an F32 or BF16 tensor to float32. */
export function toFloat32(t: LoadedTensor, name = 'tensor'): Float32Array {
  if (t.dtype === 'F32') return new Float32Array(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength / 4).slice();
  if (t.dtype === 'BF16') {
    const out = new Uint32Array(t.bytes.byteLength / 2);
    const src = Buffer.from(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
    for (let i = 0; i < out.length; i++) out[i] = src.readUInt16LE(2 * i) << 16;
    return new Float32Array(out.buffer);
  }
  throw new TypeError(`Expected dtype F32 or BF16 for ${name} but received ${t.dtype}`);
}

/** float32 → bf16 bytes, round to nearest even (NaN stays NaN). */
export function float32ToBf16(src: Float32Array): Uint8Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = Buffer.alloc(src.length * 2);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i];
    const isNaN = (b & 0x7f800000) === 0x7f800000 && (b & 0x007fffff) !== 0;
    const r = isNaN ? (b >>> 16) | 0x40 : ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
    out.writeUInt16LE(r, 2 * i);
  }
  return out;
}

export interface TensorToWrite {
  name: string;
  shape: number[];
  data: Float32Array;
  /** Stored dtype: F32 (default) or BF16. */
  dtype?: 'F32' | 'BF16';
}

function encode(tensors: TensorToWrite[], metadata: Record<string, string>): Uint8Array[] {
  const header: Record<string, unknown> = { __metadata__: metadata };
  const blobs: Uint8Array[] = [];
  let off = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (seen.has(t.name) || t.name === '__metadata__') throw new RangeError(`Duplicate or reserved tensor name '${t.name}'`);
    seen.add(t.name);
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new RangeError(`Expected ${count} values for tensor '${t.name}' of shape [${t.shape}] but received ${t.data.length}`);
    const dtype = t.dtype ?? 'F32';
    const bytes = dtype === 'BF16' ? float32ToBf16(t.data) : new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    header[t.name] = { dtype, shape: t.shape, data_offsets: [off, off + bytes.byteLength] };
    off += bytes.byteLength;
    blobs.push(bytes);
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8); // keep the data 8-byte aligned
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return [len, Buffer.from(json, 'utf8'), ...blobs];
}

/** Writes tensors (in the given order) and string metadata atomically. */
export function writeSafetensorsSync(file: string, tensors: TensorToWrite[], metadata: Record<string, string> = {}): void {
  writeFileAtomicSync(file, encode(tensors, metadata));
}

export async function writeSafetensors(file: string, tensors: TensorToWrite[], metadata: Record<string, string> = {}): Promise<void> {
  await writeFileAtomic(file, encode(tensors, metadata));
}
