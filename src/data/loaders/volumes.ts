// Medical file formats → RawImage: NIfTI volumes (one 2-D slice, nifti-reader-js) and DICOM (dcmjs,
// uncompressed transfer syntaxes). Values go to 16-bit storage: integers in 0–65535 as they are,
// signed integers shifted by −min (CT: HU + 1024 when min is −1024), floats scaled to 0–65535;
// meta says how to get the original values back.
import * as fs from 'fs';
import type * as NiftiModule from 'nifti-reader-js';
import dcmjs from 'dcmjs';
import type { IntensityWindow, RawImage } from '../../tools/image';
import { LoaderError } from './common';

export interface SliceOptions {
  /** Axis across which to cut: 0 (sagittal, x), 1 (coronal, y) or 2 (axial, z). Default 2. */
  axis?: 0 | 1 | 2;
  /** Slice index along the axis; default the middle one. Negative counts from the end. */
  slice?: number;
}

export interface VolumeImage {
  image: RawImage;
  /** original value = stored * slope + intercept */
  slope: number;
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
    })();
  }
  return niftiModule;
}

/** One 2-D slice of a NIfTI-1/2 volume (.nii or .nii.gz). */
export async function readNiftiSlice(file: string, opts: SliceOptions = {}): Promise<VolumeImage> {
  const nifti = await loadNifti();
  let buf: ArrayBuffer = toArrayBuffer(fs.readFileSync(file));
  try {
    if (nifti.isCompressed(buf)) buf = nifti.decompress(buf) as ArrayBuffer;
  } catch (err) {
    throw new LoaderError(`${file}: cannot decompress NIfTI (${err instanceof Error ? err.message : String(err)})`);
  }
  if (!nifti.isNIFTI(buf)) throw new LoaderError(`${file}: not a NIfTI file`);
  const h = nifti.readHeader(buf);
  const raw = nifti.readImage(h, buf);
  const [nx, ny, nz] = [h.dims[1] || 1, h.dims[2] || 1, h.dims[3] || 1];
  const n = nx * ny * nz;
  const le = h.littleEndian;
  const view = new DataView(raw);
  const T = nifti.NIFTI1;
  const readers: Record<number, [number, (o: number) => number]> = {
    [T.TYPE_UINT8]: [1, (o) => view.getUint8(o)],
    [T.TYPE_INT8]: [1, (o) => view.getInt8(o)],
    [T.TYPE_INT16]: [2, (o) => view.getInt16(o, le)],
    [T.TYPE_UINT16]: [2, (o) => view.getUint16(o, le)],
    [T.TYPE_INT32]: [4, (o) => view.getInt32(o, le)],
    [T.TYPE_FLOAT32]: [4, (o) => view.getFloat32(o, le)],
    [T.TYPE_FLOAT64]: [8, (o) => view.getFloat64(o, le)],
  };
  const r = readers[h.datatypeCode];
  if (!r) throw new LoaderError(`${file}: NIfTI datatype ${h.datatypeCode} is not supported (uint8, int8, int16, uint16, int32, float32, float64 are)`);
  const [bytes, get] = r;
  if (raw.byteLength < n * bytes) throw new LoaderError(`${file}: NIfTI data is truncated (${raw.byteLength} bytes for ${nx}x${ny}x${nz})`);
  const axis = opts.axis ?? 2;
  const dims = [nx, ny, nz];
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
      const o = (idx[0] + nx * (idx[1] + ny * idx[2])) * bytes;
      vals[y * W + x] = get(o) * slope + inter;
    }
  }
  const q = toUint16(vals);
  return { image: { data: q.data, width: W, height: H, channels: 1, bitDepth: 16 }, slope: q.slope, intercept: q.intercept, slices: count };
}

/** A DICOM image (first frame), greyscale or RGB, uncompressed. */
export function readDicom(file: string): VolumeImage {
  let ds: Record<string, unknown>;
  try {
    const dict = dcmjs.data.DicomMessage.readFile(toArrayBuffer(fs.readFileSync(file)));
    ds = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dict.dict) as Record<string, unknown>;
    const ts = dict.meta?.['00020010']?.Value?.[0] as string | undefined;
    if (ts && !['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.2'].includes(ts)) {
      throw new LoaderError(`${file}: compressed DICOM transfer syntax ${ts} is not supported; decompress it first (e.g. gdcmconv --raw)`);
    }
  } catch (err) {
    if (err instanceof LoaderError) throw err;
    throw new LoaderError(`${file}: not a readable DICOM file (${err instanceof Error ? err.message : String(err)})`);
  }
  const rows = Number(ds.Rows);
  const cols = Number(ds.Columns);
  const bits = Number(ds.BitsAllocated);
  const spp = Number(ds.SamplesPerPixel ?? 1);
  const signed = Number(ds.PixelRepresentation ?? 0) === 1;
  const pd = ds.PixelData as ArrayBuffer[] | ArrayBuffer | undefined;
  const buf = Array.isArray(pd) ? pd[0] : pd;
  if (!(rows > 0 && cols > 0) || !buf) throw new LoaderError(`${file}: DICOM without Rows/Columns/PixelData`);
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
  if (Number.isFinite(Number(wc)) && Number(ww) > 0) {
    // The DICOM window is in output units; convert it to stored units.
    const w: IntensityWindow = { center: (Number(wc) - q.intercept) / q.slope, width: Number(ww) / q.slope };
    image.defaultWindow = w;
  }
  return { image, slope: q.slope, intercept: q.intercept };
}
