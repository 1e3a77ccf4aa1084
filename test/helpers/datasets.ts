// Small datasets on disk in the layouts users bring (JSONL + PNG / 16-bit PNG / DICOM / NIfTI, and a
// MedMNIST .npz), written by tests into a temp folder.
import * as fs from 'fs';
import * as path from 'path';
import dcmjs from 'dcmjs';
import { zipSync } from 'fflate';
import sharp from 'sharp';

/** A w×h image whose pixel (x, y) is f(x, y) (0..255, or 0..65535 for 16 bits), as PNG bytes. */
export async function pngBytes(w: number, h: number, f: (x: number, y: number) => number, bits: 8 | 16 = 8): Promise<Buffer> {
  if (bits === 8) {
    const data = Buffer.alloc(w * h);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data[y * w + x] = f(x, y);
    return sharp(data, { raw: { width: w, height: h, channels: 1 } }).toColourspace('b-w').png().toBuffer();
  }
  const data = new Uint16Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data[y * w + x] = f(x, y);
  return sharp(Buffer.from(data.buffer), { raw: { width: w, height: h, channels: 1, premultiplied: false } }).toColourspace('grey16').png().toBuffer();
}

/** A CT-like 16-bit signed DICOM of w×h pixels (value f(x, y) in HU, stored with intercept -1024) and a display window in HU. */
export function dicomBytes(w: number, h: number, f: (x: number, y: number) => number, window = { center: 40, width: 400 }): Uint8Array {
  const { DicomMetaDictionary, DicomDict } = dcmjs.data;
  const px = new Int16Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) px[y * w + x] = f(x, y) + 1024;
  const nat = {
    SOPClassUID: '1.2.840.10008.5.1.4.1.1.2', SOPInstanceUID: '1.2.3.4', Modality: 'CT', Rows: h, Columns: w,
    BitsAllocated: 16, BitsStored: 16, HighBit: 15, PixelRepresentation: 1, SamplesPerPixel: 1, PhotometricInterpretation: 'MONOCHROME2',
    RescaleSlope: 1, RescaleIntercept: -1024, WindowCenter: window.center, WindowWidth: window.width, PixelData: [px.buffer], _vrMap: { PixelData: 'OW' },
  };
  const dict = new DicomDict(DicomMetaDictionary.denaturalizeDataset({ FileMetaInformationVersion: new Uint8Array([0, 1]).buffer, MediaStorageSOPClassUID: nat.SOPClassUID, MediaStorageSOPInstanceUID: '1.2.3.4', TransferSyntaxUID: '1.2.840.10008.1.2.1', ImplementationClassUID: '1.2.3.4.5' }));
  dict.dict = DicomMetaDictionary.denaturalizeDataset(nat);
  return new Uint8Array(dict.write());
}

/** `data` written to `rel` under `dir` (folders made as needed); returns the path. */
export function writeUnder(dir: string, rel: string, data: string | Uint8Array): string {
  const p = path.join(dir, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, data);
  return p;
}

/** A NIfTI-1 volume nx × ny × nz of int16 with value f(x, y, z); with `ext`, one 32-byte extension (a comment) between header and data. */
export function niftiBytes(nx: number, ny: number, nz: number, f: (x: number, y: number, z: number) => number, ext = false): Uint8Array {
  const off = ext ? 384 : 352;
  const buf = new ArrayBuffer(off + nx * ny * nz * 2);
  const dv = new DataView(buf);
  dv.setInt32(0, 348, true);
  [3, nx, ny, nz, 1, 1, 1, 1].forEach((d, i) => dv.setInt16(40 + 2 * i, d, true));
  dv.setInt16(70, 4, true); // DT_INT16
  dv.setInt16(72, 16, true);
  for (let i = 0; i < 8; i++) dv.setFloat32(76 + 4 * i, 1, true);
  dv.setFloat32(108, off, true);
  dv.setFloat32(112, 1, true);
  new Uint8Array(buf).set(Buffer.from('n+1\0'), 344);
  if (ext) {
    dv.setUint8(348, 1);
    dv.setInt32(352, 32, true); // esize
    dv.setInt32(356, 6, true); // ecode: comment
    new Uint8Array(buf).set(Buffer.from('fuzz'), 360);
  }
  for (let z = 0; z < nz; z++) for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++) dv.setInt16(off + 2 * (x + nx * (y + ny * z)), f(x, y, z), true);
  return new Uint8Array(buf);
}

/** A .npy buffer. */
export function npyBytes(descr: string, shape: number[], bytes: Uint8Array): Uint8Array {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  while ((10 + header.length + 1) % 64) header += ' ';
  header += '\n';
  const out = new Uint8Array(10 + header.length + bytes.length);
  out.set([0x93, ...Buffer.from('NUMPY'), 1, 0, header.length & 255, header.length >> 8]);
  out.set(Buffer.from(header, 'latin1'), 10);
  out.set(bytes, 10 + header.length);
  return out;
}

/** A MedMNIST-style .npz (octmnist: 4 classes) with `n` train and `n` test images of side `side`. */
export function medmnistBytes(n: number, side: number): Uint8Array {
  const entries: Record<string, Uint8Array> = {};
  for (const split of ['train', 'test']) {
    const labels = BigInt64Array.from({ length: n }, (_, k) => BigInt(k % 4));
    const images = new Uint8Array(n * side * side).map((_, i) => (Math.floor(i / (side * side)) % 4) * 60 + (i % side));
    entries[`${split}_images.npy`] = npyBytes('|u1', [n, side, side], images);
    entries[`${split}_labels.npy`] = npyBytes('<i8', [n, 1], new Uint8Array(labels.buffer));
  }
  return zipSync(entries);
}

export interface JsonlRow {
  image: string;
  question: string;
  options?: string[];
  answer: string | number;
  modality?: string;
  question_type?: string;
  box?: number[];
  split?: string;
}

/** Writes `rows` as data.jsonl in `dir` (plus `extraLines` verbatim, e.g. a malformed row) and returns its path. */
export function writeJsonl(dir: string, rows: JsonlRow[], extraLines: string[] = []): string {
  const file = path.join(dir, 'data.jsonl');
  fs.writeFileSync(file, [...rows.map((r) => JSON.stringify(r)), ...extraLines].join('\n') + '\n');
  return file;
}

/** Three-option questions whose answer is the brightness of a square in the image (where `box` says). */
export function brightnessRows(n: number, image: (k: number) => string, boxOf: (k: number) => number[] | undefined): JsonlRow[] {
  return Array.from({ length: n }, (_, k) => ({
    image: image(k),
    question: 'How bright is the finding?',
    options: ['dark', 'grey', 'bright'],
    answer: k % 3,
    modality: k % 2 ? 'ct' : 'xray',
    question_type: 'attribute',
    box: boxOf(k),
  }));
}
