// Any image file a dataset points at → RawImage: PNG/JPEG/TIFF/WebP/GIF through sharp (8 or 16 bit,
// grey or RGB), NIfTI (.nii, .nii.gz: one slice) and DICOM (.dcm, or files with a DICM preamble).
import * as fs from 'fs';
import sharp from 'sharp';
import type { RawImage } from '../../tools/image';
import { LoaderError, requireFile } from './common';
import { readDicom, readNiftiSlice, type SliceOptions } from './volumes';

/**
 * Decoded bytes an image file of `size` bytes may claim: generous for any real compression, but a
 * 200-byte PNG whose header claims 65535 x 65535 pixels is refused before the decoder allocates.
 */
const maxDecodedBytes = (size: number): number => 64 * 2 ** 20 + 4096 * size;

export async function readImageFile(file: string, slice: SliceOptions = {}): Promise<RawImage> {
  const lower = file.toLowerCase();
  // Before any open: a FIFO would block the synchronous reads below forever.
  requireFile(file, 'image');
  if (lower.endsWith('.nii') || lower.endsWith('.nii.gz')) return (await readNiftiSlice(file, slice)).image;
  if (lower.endsWith('.dcm') || isDicom(file)) return readDicom(file).image;
  const size = fs.statSync(file).size;
  let meta: Awaited<ReturnType<ReturnType<typeof sharp>['metadata']>>;
  try {
    meta = await sharp(file).metadata();
  } catch (err) {
    throw new LoaderError(`unreadable image ${file}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  const claimed = (meta.width ?? 0) * (meta.height ?? 0) * (meta.channels ?? 3) * (meta.depth === 'ushort' || meta.depth === 'short' ? 2 : 1);
  if (claimed > maxDecodedBytes(size)) throw new LoaderError(`unreadable image ${file}: ${meta.width}x${meta.height} pixels claimed by a ${size}-byte file`);
  try {
    const grey = meta.channels === 1 || meta.channels === 2 || meta.space === 'b-w' || meta.space === 'grey16';
    const deep = meta.depth === 'ushort' || meta.depth === 'short';
    let p = sharp(file).removeAlpha();
    if (grey) p = p.toColourspace(deep ? 'grey16' : 'b-w');
    else p = p.toColourspace('srgb');
    const { data, info } = await p.raw(deep && grey ? { depth: 'ushort' } : {}).toBuffer({ resolveWithObject: true });
    const channels = info.channels === 1 ? 1 : 3;
    if (deep && grey) {
      const u16 = new Uint16Array(info.width * info.height);
      for (let i = 0; i < u16.length; i++) u16[i] = data.readUInt16LE(2 * i);
      return { data: u16, width: info.width, height: info.height, channels: 1, bitDepth: 16 };
    }
    const px = new Uint8Array(data.buffer, data.byteOffset, data.length);
    // Greyscale saved as RGB (common for radiographs) is read as grey, so that `window` applies.
    if (channels === 3 && isGreyRgb(px)) {
      const g = new Uint8Array(px.length / 3);
      for (let i = 0; i < g.length; i++) g[i] = px[3 * i];
      return { data: g, width: info.width, height: info.height, channels: 1, bitDepth: 8 };
    }
    return { data: px, width: info.width, height: info.height, channels, bitDepth: 8 };
  } catch (err) {
    throw new LoaderError(`unreadable image ${file}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

function isGreyRgb(px: Uint8Array): boolean {
  for (let i = 0; i < px.length; i += 3) if (px[i] !== px[i + 1] || px[i] !== px[i + 2]) return false;
  return true;
}

function isDicom(file: string): boolean {
  try {
    const fd = fs.openSync(file, 'r');
    const b = Buffer.alloc(132);
    fs.readSync(fd, b, 0, 132, 0);
    fs.closeSync(fd);
    return b.toString('latin1', 128, 132) === 'DICM';
  } catch {
    return false;
  }
}
