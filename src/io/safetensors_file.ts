// A safetensors file read lazily: the header first (validated by parseHeader against the file's real
// size), then one tensor at a time, so a caller can check names, shapes and dtypes against what it
// expects before reading (or allocating for) any data, and never holds the file twice.
import * as fs from 'fs';
import { DEFAULT_MAX_HEADER, parseHeader, SafetensorsError, type ReadLimits, type SafetensorsHeader, type TensorEntry } from './safetensors';

export interface SafetensorsFile {
  readonly path: string;
  readonly header: SafetensorsHeader;
  /** The tensor's data as float32 (F32 copied, BF16 and F16 widened exactly); other dtypes are an error naming the file. */
  readFloat32(name: string): Promise<Float32Array>;
  /** A BF16 tensor's raw bits, not widened (any other dtype is an error). */
  readBf16(name: string): Promise<Uint16Array>;
  close(): Promise<void>;
}

/** Opens `file` and validates its header (length limit, JSON, dtypes, shapes, offsets tiling the data). */
export async function openSafetensors(file: string, limits: ReadLimits = {}): Promise<SafetensorsFile> {
  let fh: fs.promises.FileHandle;
  try {
    requireRegularFile(file);
    fh = await fs.promises.open(file, 'r');
  } catch (err) {
    throw cannotOpen(file, err);
  }
  try {
    const size = (await fh.stat()).size;
    const len = Buffer.alloc(8);
    const got = size >= 8 ? (await fh.read(len, 0, 8, 0)).bytesRead : 0;
    const head = Buffer.alloc(headerSpan(len, got, size, limits));
    if (head.length > 8) await fh.read(head, 0, head.length, 0);
    else len.copy(head, 0, 0, head.length);
    return lazyFile(file, fh, parseHeader(head, size, file, limits));
  } catch (err) {
    await fh.close();
    throw err;
  }
}

/** Reads and validates just the header of `file` (metadata, tensor entries), synchronously. */
export function readHeaderSync(file: string, limits: ReadLimits = {}): SafetensorsHeader {
  let fd: number;
  try {
    requireRegularFile(file);
    fd = fs.openSync(file, 'r');
  } catch (err) {
    throw cannotOpen(file, err);
  }
  try {
    const size = fs.fstatSync(fd).size;
    const len = Buffer.alloc(8);
    const got = size >= 8 ? fs.readSync(fd, len, 0, 8, 0) : 0;
    const head = Buffer.alloc(headerSpan(len, got, size, limits));
    if (head.length > 8) fs.readSync(fd, head, 0, head.length, 0);
    else len.copy(head, 0, 0, head.length);
    return parseHeader(head, size, file, limits);
  } finally {
    fs.closeSync(fd);
  }
}

/** Opening a FIFO or a device for reading would block (or never end): only regular files are opened. */
function requireRegularFile(file: string): void {
  if (!fs.statSync(file).isFile()) throw new Error('not a regular file');
}

function cannotOpen(file: string, err: unknown): SafetensorsError {
  return new SafetensorsError(file, `cannot open: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
}

/**
 * Bytes of the file to hand parseHeader, from its first `got` bytes (`len`): the whole header when
 * its length is within the limit and the file, else only what was read, so that parseHeader refuses
 * it from the length alone, before anything is allocated for it.
 */
function headerSpan(len: Buffer, got: number, size: number, limits: ReadLimits): number {
  if (got < 8) return got;
  const claimed = len.readBigUInt64LE(0);
  const ok = claimed <= BigInt(limits.maxHeaderBytes ?? DEFAULT_MAX_HEADER) && 8n + claimed <= BigInt(size);
  return ok ? 8 + Number(claimed) : 8;
}

function lazyFile(file: string, fh: fs.promises.FileHandle, header: SafetensorsHeader): SafetensorsFile {
  const entry = (name: string): TensorEntry => {
    const t = header.tensors.get(name);
    if (!t) throw new SafetensorsError(file, `no tensor '${name}'`);
    return t;
  };
  const readBytes = async (t: TensorEntry, into: Uint8Array): Promise<void> => {
    const { bytesRead } = await fh.read(into, 0, into.byteLength, header.dataStart + t.dataOffsets[0]);
    // The size was checked at open; a file that shrank since is reported, not read as zeros.
    if (bytesRead !== into.byteLength) throw new SafetensorsError(file, `truncated while reading: got ${bytesRead} of ${into.byteLength} bytes`);
  };
  return {
    path: file,
    header,
    async readFloat32(name: string): Promise<Float32Array> {
      const t = entry(name);
      const count = t.shape.reduce((a, b) => a * b, 1);
      if (t.dtype === 'F32') {
        const out = new Float32Array(count);
        await readBytes(t, new Uint8Array(out.buffer));
        return out;
      }
      if (t.dtype === 'BF16') {
        const raw = new Uint16Array(count);
        await readBytes(t, new Uint8Array(raw.buffer));
        const bits = new Uint32Array(count);
        for (let i = 0; i < count; i++) bits[i] = raw[i] << 16;
        return new Float32Array(bits.buffer);
      }
      if (t.dtype === 'F16') {
        const raw = new Uint16Array(count);
        await readBytes(t, new Uint8Array(raw.buffer));
        const out = new Float32Array(count);
        for (let i = 0; i < count; i++) out[i] = halfToFloat(raw[i]);
        return out;
      }
      throw new SafetensorsError(file, `tensor '${name}' has dtype ${t.dtype} (F32, BF16 or F16 expected)`);
    },
    async readBf16(name: string): Promise<Uint16Array> {
      const t = entry(name);
      if (t.dtype !== 'BF16') throw new SafetensorsError(file, `tensor '${name}' has dtype ${t.dtype}, not BF16`);
      const out = new Uint16Array(t.shape.reduce((a, b) => a * b, 1));
      await readBytes(t, new Uint8Array(out.buffer));
      return out;
    },
    close: () => fh.close(),
  };
}

/** IEEE half → float (exact: every half is a float). */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // zero and subnormals
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}
