// A safetensors file read lazily: the header first (validated by parseHeader against the file's real
// size), then one tensor at a time, so a caller can check names, shapes and dtypes against what it
// expects before reading (or allocating for) any data, and never holds the file twice.
import * as fs from 'fs';
import { parseHeader, SafetensorsError, type ReadLimits, type SafetensorsHeader, type TensorEntry } from './safetensors';

export interface SafetensorsFile {
  readonly path: string;
  readonly header: SafetensorsHeader;
  /** The tensor's data as float32 (F32 copied, BF16 widened); other dtypes are an error naming the file. */
  readFloat32(name: string): Promise<Float32Array>;
  close(): Promise<void>;
}

/** Opens `file` and validates its header (length limit, JSON, dtypes, shapes, offsets tiling the data). */
export async function openSafetensors(file: string, limits: ReadLimits = {}): Promise<SafetensorsFile> {
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(file, 'r');
  } catch (err) {
    throw new SafetensorsError(file, `cannot open: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    const size = (await fh.stat()).size;
    const lenBytes = Buffer.alloc(8);
    const got = size >= 8 ? (await fh.read(lenBytes, 0, 8, 0)).bytesRead : 0;
    // Only what parseHeader accepts is read: a header length past the limit or the file is refused
    // from the first 8 bytes, before allocating for it.
    const claimed = got === 8 ? lenBytes.readBigUInt64LE(0) : 0n;
    const maxHeader = BigInt(limits.maxHeaderBytes ?? 100 * 1024 * 1024);
    const n = claimed <= maxHeader && claimed <= BigInt(size) ? Number(claimed) : 0;
    const head = Buffer.alloc(8 + n);
    if (got === 8) await fh.read(head, 0, head.length, 0);
    const header = parseHeader(head.subarray(0, got === 8 ? head.length : got), size, file, limits);
    return lazyFile(file, fh, header);
  } catch (err) {
    await fh.close();
    throw err;
  }
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
      throw new SafetensorsError(file, `tensor '${name}' has dtype ${t.dtype} (F32 or BF16 expected)`);
    },
    close: () => fh.close(),
  };
}
