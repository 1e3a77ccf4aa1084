// Medical file formats → RawImage: NIfTI volumes (one 2-D slice, nifti-reader-js) and DICOM (dcmjs,
// uncompressed transfer syntaxes). Values go to 16-bit storage: integers in 0–65535 as they are,
// signed integers shifted by −min (CT: HU + 1024 when min is −1024), floats scaled to 0–65535;
// meta says how to get the original values back.
import * as util from 'util';
import * as zlib from 'zlib';
import type * as NiftiModule from 'nifti-reader-js';
import type DcmjsModule from 'dcmjs';
import type { IntensityWindow, RawImage } from '../../tools/image';
import { LoaderError, readBytes } from './common';

export interface SliceOptions {
  /** Axis across which to cut: 0 (sagittal, x), 1 (coronal, y) or 2 (axial, z). Default 2. */
  axis?: 0 | 1 | 2;
  /** Slice index along the axis; default the middle one. Negative counts from the end. */
  slice?: number;
}

export interface VolumeImage {
  /** The 2-D image in its stored units (original value = stored * slope + intercept). */
  image: RawImage;
  /** original value = stored * slope + intercept */
  slope: number;
  /** Offset of the mapping back to original values (see `slope`). */
  intercept: number;
  /** Number of slices along the axis (NIfTI). */
  slices?: number;
}

function toArrayBuffer(b: Buffer): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

/** Maps any numeric samples to Uint16 storage, returning slope/intercept back to the input values. */
export function toUint16(values: ArrayLike<number>): { data: Uint16Array; slope: number; intercept: number } {
  let lo = Infinity;
  let hi = -Infinity;
  let ints = true;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
    if (ints && !Number.isInteger(v)) ints = false;
  }
  if (!Number.isFinite(lo)) lo = hi = 0;
  const data = new Uint16Array(values.length);
  let slope = 1;
  let intercept = 0;
  if (ints && lo >= 0 && hi <= 65535) intercept = 0;
  else if (ints && hi - lo <= 65535) intercept = lo;
  else {
    slope = hi > lo ? (hi - lo) / 65535 : 1;
    intercept = lo;
  }
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    const s = Number.isFinite(v) ? Math.round((v - intercept) / slope) : 0;
    data[i] = s < 0 ? 0 : s > 65535 ? 65535 : s;
  }
  return { data, slope, intercept };
}

let niftiModule: Promise<typeof NiftiModule> | undefined;
let niftiLoaded: typeof NiftiModule | undefined;

/** nifti-reader-js is ESM only: require() works on Node >= 22 (and under jest), import() elsewhere. */
function loadNifti(): Promise<typeof NiftiModule> {
  if (!niftiModule) {
    niftiModule = (async () => {
      try {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        return require('nifti-reader-js') as typeof NiftiModule;
      } catch {
        // A real dynamic import (tsc would turn `import()` into require under CommonJS).
        return (await (new Function('m', 'return import(m)') as (m: string) => Promise<unknown>)('nifti-reader-js')) as typeof NiftiModule;
      }
    })().then((m) => (niftiLoaded = m));
  }
  return niftiModule;
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/**
 * gunzip with Node's zlib, which grows its output as data actually inflates. (fflate, which
 * nifti-reader-js uses, allocates the size the gzip trailer claims: 4 GB for a 100-byte file.)
 */
function gunzip(bytes: Buffer, file: string): Buffer {
  try {
    return zlib.gunzipSync(bytes);
  } catch (err) {
    throw new LoaderError(`${file}: cannot decompress NIfTI (${message(err)})`, { cause: err });
  }
}

/** Bytes per voxel of the supported NIfTI datatypes: uint8, int8, int16, uint16, int32, float32, float64. */
const NIFTI_BYTES: Record<number, number> = { 2: 1, 256: 1, 4: 2, 512: 2, 8: 4, 16: 4, 64: 8 };

/** One 2-D slice of a NIfTI-1/2 volume (.nii or .nii.gz). */
export async function readNiftiSlice(file: string, opts: SliceOptions = {}): Promise<VolumeImage> {
  // Synchronous once the module is loaded, so a caller's time limit covers the whole parse.
  const nifti = niftiLoaded ?? (await loadNifti());
  let bytes = readBytes(file, 'NIfTI file');
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = gunzip(bytes, file);
  const buf = toArrayBuffer(bytes);
  const n1 = bytes.length >= 348 && nifti.isNIFTI1(buf);
  if (!n1 && !(bytes.length >= 540 && nifti.isNIFTI2(buf))) throw new LoaderError(`${file}: not a NIfTI file`);
  const hdrSize = n1 ? 348 : 540;
  let h: ReturnType<typeof nifti.readHeader>;
  try {
    // The fixed header only: nifti-reader-js walks the extensions after it with sizes from the
    // file (a negative esize sends it back and forth forever), and medgym reads no extensions.
    h = nifti.readHeader(buf.slice(0, hdrSize));
  } catch (err) {
    throw new LoaderError(`${file}: malformed NIfTI header (${message(err)})`, { cause: err });
  }
  // Everything below comes from the header; it is checked against the bytes present before use.
  const ndim = h.dims[0];
  if (!Number.isInteger(ndim) || ndim < 1 || ndim > 7) throw new LoaderError(`${file}: NIfTI dim[0] is ${ndim} (expected 1–7)`);
  const dims = [1, 2, 3].map((k) => (k > ndim ? 1 : h.dims[k] || 1));
  if (dims.some((d) => !Number.isSafeInteger(d) || d < 1)) throw new LoaderError(`${file}: NIfTI dimensions ${h.dims.slice(1, ndim + 1).join('x')} are not positive integers`);
  const [nx, ny, nz] = dims;
  const T = nifti.NIFTI1;
  const bytesPer = NIFTI_BYTES[h.datatypeCode];
  if (!bytesPer) {
    throw new LoaderError(`${file}: NIfTI datatype ${h.datatypeCode} is not supported (uint8, int8, int16, uint16, int32, float32, float64 are)`);
  }
  const off = h.vox_offset;
  if (!Number.isFinite(off) || off < hdrSize || !Number.isInteger(off)) throw new LoaderError(`${file}: NIfTI vox_offset ${off} is not a byte offset past the ${hdrSize}-byte header`);
  const need = nx * ny * nz * bytesPer;
  if (off + need > bytes.length) throw new LoaderError(`${file}: NIfTI data is truncated (${Math.max(0, bytes.length - off)} bytes at offset ${off} for ${nx}x${ny}x${nz} of ${bytesPer}-byte voxels)`);
  const le = h.littleEndian;
  const view = new DataView(buf, off, need);
  const readers: Record<number, (o: number) => number> = {
    [T.TYPE_UINT8]: (o) => view.getUint8(o),
    [T.TYPE_INT8]: (o) => view.getInt8(o),
    [T.TYPE_INT16]: (o) => view.getInt16(o, le),
    [T.TYPE_UINT16]: (o) => view.getUint16(o, le),
    [T.TYPE_INT32]: (o) => view.getInt32(o, le),
    [T.TYPE_FLOAT32]: (o) => view.getFloat32(o, le),
    [T.TYPE_FLOAT64]: (o) => view.getFloat64(o, le),
  };
  const get = readers[h.datatypeCode];
  const axis = opts.axis ?? 2;
  if (axis !== 0 && axis !== 1 && axis !== 2) throw new LoaderError(`${file}: axis ${axis} is not 0, 1 or 2`);
  const count = dims[axis];
  let k = opts.slice ?? Math.floor(count / 2);
  if (k < 0) k += count;
  if (!Number.isInteger(k) || k < 0 || k >= count) throw new LoaderError(`${file}: slice ${opts.slice} out of range 0..${count - 1} on axis ${axis}`);
  // The slice's rows run along the remaining axes in order (x then y, x then z, y then z).
  const [u, v] = [0, 1, 2].filter((a) => a !== axis);
  const W = dims[u];
  const H = dims[v];
  const slope = h.scl_slope && Number.isFinite(h.scl_slope) ? h.scl_slope : 1;
  const inter = Number.isFinite(h.scl_inter) ? h.scl_inter : 0;
  const vals = new Float64Array(W * H);
  const idx = [0, 0, 0];
  idx[axis] = k;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      idx[u] = x;
      idx[v] = y;
      const o = (idx[0] + nx * (idx[1] + ny * idx[2])) * bytesPer;
      vals[y * W + x] = get(o) * slope + inter;
    }
  }
  const q = toUint16(vals);
  return { image: { data: q.data, width: W, height: H, channels: 1, bitDepth: 16 }, slope: q.slope, intercept: q.intercept, slices: count };
}

const UNCOMPRESSED_SYNTAXES = ['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.2'];

/**
 * The transfer syntax from the file meta group (always explicit VR little endian), read before the
 * dataset is parsed so that compressed and deflated files are turned away without decoding them.
 */
function metaTransferSyntax(b: Buffer): string | undefined {
  let p = 132;
  while (p + 8 <= b.length && b.readUInt16LE(p) === 0x0002) {
    const elem = b.readUInt16LE(p + 2);
    const vr = b.toString('latin1', p + 4, p + 6);
    const long = ['OB', 'OW', 'OF', 'SQ', 'UT', 'UN'].includes(vr);
    if (long && p + 12 > b.length) return undefined;
    const len = long ? b.readUInt32LE(p + 8) : b.readUInt16LE(p + 6);
    const start = p + (long ? 12 : 8);
    if (start + len > b.length) return undefined;
    if (elem === 0x0010) return b.toString('latin1', start, start + len).replace(/[\0 ]+$/, '');
    p = start + len;
  }
  return undefined;
}

class ValuePastEnd extends Error {}

/**
 * dcmjs reads a value by slicing the declared number of bytes, and its SplitDataView.slice
 * allocates `end - start` bytes whenever the range runs past the data: a 500-byte file whose
 * element declares 0xFFFFFFF0 bytes costs a 4 GB allocation. For the duration of the (synchronous)
 * parse, a slice of a read stream past the end of its data is refused instead: the file is
 * truncated or corrupt. Restored afterwards, so nothing else sees the change.
 */
let dcmjsLoaded: typeof DcmjsModule | undefined;
/** dcmjs, loaded on the first DICOM read: ~35 ms that importing medgym need not pay. */
function dcmjsModule(): typeof DcmjsModule {
  if (!dcmjsLoaded) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const m = require('dcmjs') as typeof DcmjsModule & { default?: typeof DcmjsModule };
    dcmjsLoaded = m.default ?? m;
  }
  return dcmjsLoaded;
}

function readDicomDict(ab: ArrayBuffer): ReturnType<typeof DcmjsModule.data.DicomMessage.readFile> {
  const dcmjs = dcmjsModule();
  const proto = (dcmjs.data.ReadBufferStream as unknown as { prototype: Record<string, unknown> }).prototype;
  const inner = proto.slice as ((this: unknown, start?: number, end?: number) => ArrayBuffer) | undefined;
  const own = Object.prototype.hasOwnProperty.call(proto, 'slice');
  if (typeof inner === 'function') {
    proto.slice = function (this: { startOffset: number; endOffset: number; size: number }, start = this.startOffset, end = this.endOffset): ArrayBuffer {
      if (end > this.size) throw new ValuePastEnd(`a value of ${end - start} bytes at byte ${start} runs past the end of the data (${this.size} bytes)`);
      return inner.call(this, start, end);
    };
  }
  try {
    return dcmjs.data.DicomMessage.readFile(ab);
  } finally {
    if (own) proto.slice = inner;
    else delete proto.slice;
  }
}

/** A DICOM image (first frame), greyscale or RGB, uncompressed. */
export function readDicom(file: string): VolumeImage {
  const bytes = readBytes(file, 'DICOM file');
  if (bytes.length < 132 || bytes.toString('latin1', 128, 132) !== 'DICM') throw new LoaderError(`${file}: not a readable DICOM file (no DICM preamble)`);
  const ts = metaTransferSyntax(bytes);
  if (ts === undefined) throw new LoaderError(`${file}: not a readable DICOM file (no TransferSyntaxUID in the file meta group)`);
  if (!/^[0-9]+(\.[0-9]+)+$/.test(ts)) throw new LoaderError(`${file}: not a readable DICOM file (transfer syntax ${JSON.stringify(ts)} is not a UID)`);
  if (!UNCOMPRESSED_SYNTAXES.includes(ts)) {
    throw new LoaderError(`${file}: compressed DICOM transfer syntax ${ts} is not supported; decompress it first (e.g. gdcmconv --raw)`);
  }
  let ds: Record<string, unknown>;
  try {
    const dict = readDicomDict(toArrayBuffer(bytes));
    ds = dcmjsModule().data.DicomMetaDictionary.naturalizeDataset(dict.dict) as Record<string, unknown>;
  } catch (err) {
    throw new LoaderError(`${file}: not a readable DICOM file (${message(err)})`, { cause: err });
  }
  const rows = Number(ds.Rows);
  const cols = Number(ds.Columns);
  const bits = Number(ds.BitsAllocated);
  const spp = Number(ds.SamplesPerPixel ?? 1);
  const signed = Number(ds.PixelRepresentation ?? 0) === 1;
  const pd = ds.PixelData;
  const first = Array.isArray(pd) ? pd[0] : pd;
  // PixelData is an ArrayBuffer unless the file mislabels it (another VR gives numbers or text).
  const buf = util.types.isAnyArrayBuffer(first) ? (first as ArrayBuffer) : undefined;
  if (!(Number.isInteger(rows) && rows > 0 && Number.isInteger(cols) && cols > 0) || !buf) throw new LoaderError(`${file}: DICOM without Rows/Columns/PixelData`);
  const n = rows * cols * spp;
  if (spp === 3) {
    if (bits !== 8) throw new LoaderError(`${file}: RGB DICOM with ${bits} bits is not supported`);
    const data = new Uint8Array(buf.slice(0, n));
    if (data.length < n) throw new LoaderError(`${file}: PixelData is truncated`);
    if (Number(ds.PlanarConfiguration ?? 0) === 1) {
      const inter = new Uint8Array(n);
      const plane = rows * cols;
      for (let i = 0; i < plane; i++) for (let c = 0; c < 3; c++) inter[i * 3 + c] = data[c * plane + i];
      return { image: { data: inter, width: cols, height: rows, channels: 3, bitDepth: 8 }, slope: 1, intercept: 0 };
    }
    return { image: { data, width: cols, height: rows, channels: 3, bitDepth: 8 }, slope: 1, intercept: 0 };
  }
  if (spp !== 1 || (bits !== 8 && bits !== 16)) throw new LoaderError(`${file}: DICOM with ${spp} samples of ${bits} bits is not supported`);
  if (buf.byteLength < n * (bits / 8)) throw new LoaderError(`${file}: PixelData is truncated`);
  const dv = new DataView(buf);
  const slope = Number(ds.RescaleSlope ?? 1) || 1;
  const inter = Number(ds.RescaleIntercept ?? 0) || 0;
  const vals = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const s = bits === 8 ? (signed ? dv.getInt8(i) : dv.getUint8(i)) : signed ? dv.getInt16(2 * i, true) : dv.getUint16(2 * i, true);
    vals[i] = s * slope + inter;
  }
  if (String(ds.PhotometricInterpretation ?? '').trim() === 'MONOCHROME1') {
    let hi = -Infinity;
    for (const v of vals) hi = Math.max(hi, v);
    for (let i = 0; i < n; i++) vals[i] = hi - vals[i];
  }
  const q = toUint16(vals);
  const image: RawImage = { data: q.data, width: cols, height: rows, channels: 1, bitDepth: 16 };
  const wc = Array.isArray(ds.WindowCenter) ? ds.WindowCenter[0] : ds.WindowCenter;
  const ww = Array.isArray(ds.WindowWidth) ? ds.WindowWidth[0] : ds.WindowWidth;
  if (Number.isFinite(Number(wc)) && Number.isFinite(Number(ww)) && Number(ww) > 0) {
    // The DICOM window is in output units; convert it to stored units.
    const w: IntensityWindow = { center: (Number(wc) - q.intercept) / q.slope, width: Number(ww) / q.slope };
    image.defaultWindow = w;
  }
  return { image, slope: q.slope, intercept: q.intercept };
}
