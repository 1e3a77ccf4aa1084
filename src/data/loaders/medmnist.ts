// MedMNIST .npz (numpy zip of {train,val,test}_{images,labels}.npy), unzipped with fflate. Each
// image becomes a classification question over the dataset's label names (all of them up to 4,
// else the truth and 3 seeded distractors; the answer letter is balanced by the seeded shuffle).
import * as fs from 'fs';
import * as path from 'path';
import { unzipSync } from 'fflate';
import { Stream, hashString } from '../rng';
import type { RawImage } from '../../tools/image';
import type { Split } from '../types';
import { LoaderError, readBytes, rowInfo, type OpenOptions, type Rows } from './common';
import { ManifestDataset } from './manifest';

export interface NpyArray {
  /** Array dimensions (the .npy header's `shape`). */
  shape: number[];
  /** numpy dtype string of the .npy header, e.g. '|u1' or '<i8'. */
  descr: string;
  /** Samples as numbers, C order. */
  data: ArrayLike<number>;
}

const NPY_SIZES: Record<string, number> = { u1: 1, i1: 1, b1: 1, u2: 2, i2: 2, u4: 4, i4: 4, f4: 4, u8: 8, i8: 8, f8: 8 };

/**
 * Parses a .npy file (format 1.0–3.0; little-endian u1/i1/u2/i2/i4/u4/i8/u8/f4/f8/b1; C order).
 * Every length and dimension comes from the file, so each is checked against the bytes actually
 * there before anything that size is allocated.
 */
export function parseNpy(buf: Uint8Array, name = 'array.npy'): NpyArray {
  if (buf.length < 10 || buf[0] !== 0x93 || String.fromCharCode(...buf.subarray(1, 6)) !== 'NUMPY') throw new LoaderError(`${name}: not a .npy file`);
  const major = buf[6];
  if (major < 1 || major > 3) throw new LoaderError(`${name}: .npy format version ${major}.${buf[7]} is not supported (1.0–3.0 are)`);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const start = major === 1 ? 10 : 12;
  if (buf.length < start) throw new LoaderError(`${name}: truncated .npy header (${buf.length} bytes)`);
  const hlen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  if (start + hlen > buf.length) throw new LoaderError(`${name}: .npy header of ${hlen} bytes runs past the end of the file (${buf.length} bytes)`);
  const header = new TextDecoder().decode(buf.subarray(start, start + hlen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*True/.test(header);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || shapeText === undefined) throw new LoaderError(`${name}: malformed .npy header`);
  if (fortran) throw new LoaderError(`${name}: Fortran-order arrays are not supported`);
  // Dimensions are plain non-negative integers ("3L" from Python 2 writers included).
  const dims = shapeText.split(',').map((s) => s.trim());
  if (dims.length > 1 && dims[dims.length - 1] === '') dims.pop();
  if (dims.length === 1 && dims[0] === '') dims.pop();
  const shape = dims.map((d) => (/^\d{1,16}L?$/.test(d) ? Number.parseInt(d, 10) : NaN));
  if (shape.some((d) => !Number.isSafeInteger(d))) throw new LoaderError(`${name}: malformed .npy shape (${shapeText.trim()})`);
  const kind = descr.slice(1);
  const size = NPY_SIZES[kind];
  if (!size || !'<|='.includes(descr[0]) || descr.length !== 3) throw new LoaderError(`${name}: dtype ${descr} is not supported`);
  const off = start + hlen;
  const body = buf.subarray(off);
  // The element count, checked against the data present one dimension at a time (no overflow).
  let n = shape.includes(0) ? 0 : 1;
  for (const d of shape) {
    if (n * size > body.length) break;
    n *= d;
  }
  if (n * size > body.length) throw new LoaderError(`${name}: data is truncated (${body.length} bytes for shape (${shape.join(', ')}) of ${descr})`);
  const v = new DataView(body.buffer, body.byteOffset, n * size);
  const read: Record<string, (i: number) => number> = {
    u1: (i) => v.getUint8(i),
    b1: (i) => v.getUint8(i),
    i1: (i) => v.getInt8(i),
    u2: (i) => v.getUint16(2 * i, true),
    i2: (i) => v.getInt16(2 * i, true),
    u4: (i) => v.getUint32(4 * i, true),
    i4: (i) => v.getInt32(4 * i, true),
    f4: (i) => v.getFloat32(4 * i, true),
    u8: (i) => Number(v.getBigUint64(8 * i, true)),
    i8: (i) => Number(v.getBigInt64(8 * i, true)),
    f8: (i) => v.getFloat64(8 * i, true),
  };
  const data = kind === 'u1' ? body.subarray(0, n) : Float64Array.from({ length: n }, (_, i) => read[kind](i));
  return { shape, descr, data };
}

/** Label names and modality of the MedMNIST v2 datasets medgym knows by file name. */
export const MEDMNIST_INFO: Record<string, { modality: string; labels: string[] }> = {
  pathmnist: { modality: 'microscopy', labels: ['adipose', 'background', 'debris', 'lymphocytes', 'mucus', 'smooth muscle', 'normal colon mucosa', 'cancer-associated stroma', 'colorectal adenocarcinoma epithelium'] },
  dermamnist: { modality: 'dermoscopy', labels: ['actinic keratosis', 'basal cell carcinoma', 'benign keratosis', 'dermatofibroma', 'melanoma', 'melanocytic nevus', 'vascular lesion'] },
  octmnist: { modality: 'oct', labels: ['choroidal neovascularization', 'diabetic macular edema', 'drusen', 'normal'] },
  pneumoniamnist: { modality: 'xray', labels: ['normal', 'pneumonia'] },
  breastmnist: { modality: 'ultrasound', labels: ['malignant', 'normal or benign'] },
  bloodmnist: { modality: 'microscopy', labels: ['basophil', 'eosinophil', 'erythroblast', 'immature granulocyte', 'lymphocyte', 'monocyte', 'neutrophil', 'platelet'] },
  retinamnist: { modality: 'fundus', labels: ['grade 0', 'grade 1', 'grade 2', 'grade 3', 'grade 4'] },
};

export interface MedMnistOptions {
  /** Which arrays: train, val or test. Default train. (medMnistRows: `splits`.) */
  split?: 'train' | 'val' | 'test';
  /** Label names (index = label); default from MEDMNIST_INFO by file name, else "class k". */
  labels?: string[];
  /** Modality of every item; default from MEDMNIST_INFO by file name, else 'unknown'. */
  modality?: string;
  /** Question text of every item; default 'Which finding does this image show?'. */
  question?: string;
  /** Options per question (2–4). Default 4. */
  numOptions?: number;
}

/** Most classes inferred from the labels alone (no label names given); more is a corrupt file. */
const MAX_INFERRED_CLASSES = 1000;
/** Deflate cannot expand data by more than about 1032:1. */
const MAX_DEFLATE_RATIO = 1032;

/**
 * The named entries of a zip file, each validated before it is inflated. fflate's unzipSync walks as
 * many directory entries as the file claims (up to 2^32 with zip64) and allocates each entry's
 * claimed uncompressed size up front: a 500-byte file can ask for gigabytes. So the walk is bounded
 * by the directory entries the file could physically hold, and an entry's claimed size must be one
 * its compressed bytes can produce.
 */
function unzipEntries(bytes: Uint8Array, file: string, wanted: Set<string>): { files: Record<string, Uint8Array>; names: string[] } {
  const names: string[] = [];
  const maxEntries = Math.floor(bytes.length / 46); // a central directory header is at least 46 bytes
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(bytes, {
      filter: (f) => {
        if (names.length >= maxEntries) throw new LoaderError(`${file}: zip directory claims more entries than a ${bytes.length}-byte file can hold`);
        names.push(f.name);
        if (!wanted.has(f.name)) return false;
        const plausible = f.compression === 0 ? f.originalSize === f.size : f.compression === 8 ? f.originalSize <= MAX_DEFLATE_RATIO * f.size + 64 : true;
        if (!plausible || f.size > bytes.length) {
          throw new LoaderError(`${file}: zip entry ${f.name} claims ${f.originalSize} bytes from ${f.size} compressed bytes (method ${f.compression}) in a ${bytes.length}-byte file`);
        }
        return true;
      },
    });
  } catch (err) {
    if (err instanceof LoaderError) throw err;
    throw new LoaderError(`${file}: not a readable .npz (zip) file (${err instanceof Error ? err.message : String(err)})`, { cause: err });
  }
  // Own, plain entries only (a zip may name an entry "__proto__").
  const out: Record<string, Uint8Array> = Object.create(null);
  for (const k of wanted) if (Object.prototype.hasOwnProperty.call(files, k)) out[k] = files[k];
  return { files: out, names };
}

export type MedMnistRecord = {
  /** Stable id of the row. */
  id: string;
  /** Row index within its split's arrays. */
  k: number;
  /** The arrays the row comes from. */
  split: Split;
};

/**
 * Rows of the splits' arrays of a MedMNIST .npz (`splits`: those to read, or 'all': each of
 * train/val/test whose images are in the file). Ids are "<name>/<split>/<k>", unique across splits;
 * label names inferred from the labels span all the splits read, so options agree across them. With
 * opts.onSkip an image whose label is not a class index (or has no name) is skipped as
 * "file[split/k]"; the arrays themselves must be sound (or the file is refused).
 */
export function medMnistRows(file: string, opts: MedMnistOptions & OpenOptions & { splits?: Split[] | 'all' } = {}): Rows<MedMnistRecord> {
  if (!fs.existsSync(file)) throw new LoaderError(`MedMNIST file ${file} not found`);
  const all: Split[] = ['train', 'val', 'test'];
  const want = opts.splits === 'all' ? all : (opts.splits ?? [opts.split ?? 'train']);
  const bytes = new Uint8Array(readBytes(file, 'MedMNIST file'));
  opts.onFile?.(file, bytes);
  const { files, names: entries } = unzipEntries(bytes, file, new Set(want.flatMap((s) => [`${s}_images.npy`, `${s}_labels.npy`])));
  const get = (n: string): NpyArray => {
    const b = files[`${n}.npy`];
    if (!b) throw new LoaderError(`${file}: no ${n}.npy inside (has ${entries.map((e) => JSON.stringify(e)).join(', ') || 'nothing'})`);
    return parseNpy(b, `${path.basename(file)}/${n}.npy`);
  };
  let splits = want;
  if (opts.splits === 'all') {
    splits = all.filter((s) => files[`${s}_images.npy`]);
    if (splits.length === 0) throw new LoaderError(`${file}: no train_images.npy, val_images.npy or test_images.npy inside (has ${entries.map((e) => JSON.stringify(e)).join(', ') || 'nothing'})`);
  }
  const arrays = splits.map((split) => {
    const images = get(`${split}_images`);
    const labels = get(`${split}_labels`);
    const [n, h, w, c = 1] = images.shape;
    if (images.shape.length < 3 || images.shape.length > 4 || (c !== 1 && c !== 3) || images.descr.slice(1) !== 'u1') {
      throw new LoaderError(`${file}: expected uint8 images of shape (N, H, W) or (N, H, W, 3) but found ${images.descr} (${images.shape.join(', ')})`);
    }
    if (h < 1 || w < 1) throw new LoaderError(`${file}: images of ${h}x${w} pixels`);
    if (labels.shape[0] !== n) throw new LoaderError(`${file}: ${n} images but ${labels.shape[0]} labels`);
    const perLabel = labels.shape.slice(1).reduce((a, b) => a * b, 1);
    if (perLabel !== 1) throw new LoaderError(`${file}: multi-label arrays (${perLabel} labels per image, e.g. ChestMNIST) cannot be one multiple-choice answer`);
    return { split, images, labels, n, h, w, c };
  });
  const base = path.basename(file).replace(/(_\d+)?\.npz$/, '').toLowerCase();
  const known = Object.prototype.hasOwnProperty.call(MEDMNIST_INFO, base) ? MEDMNIST_INFO[base] : undefined;
  const given = opts.labels ?? known?.labels;
  const records: MedMnistRecord[] = [];
  const where: string[] = [];
  const at = (split: Split, k: number): string => `${file}[${split}/${k}]`;
  /** A bad label: thrown as the original reader did, or skipped with onSkip. */
  const bad = (split: Split, k: number, fileMessage: string, rowMessage: string): void => {
    if (!opts.onSkip) throw new LoaderError(`${file}: ${fileMessage}`);
    opts.onSkip(at(split, k), rowMessage);
  };
  // Labels index the names: each must be a non-negative integer, and without given names the
  // class count comes from the largest label, so it is bounded before an array that size is made.
  let maxLabel = 0;
  const ok = arrays.map(({ split, labels, n }) => {
    const keep = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const l = labels.data[i];
      if (!Number.isSafeInteger(l) || l < 0) bad(split, i, `label ${l} of image ${i} is not a class index`, `label ${l} is not a class index`);
      else if (given && l >= given.length) bad(split, i, `label ${l} has no name (${given.length} labels given)`, `label ${l} has no name (${given.length} labels given)`);
      else {
        keep[i] = 1;
        maxLabel = Math.max(maxLabel, l);
      }
    }
    return keep;
  });
  if (!given && maxLabel >= MAX_INFERRED_CLASSES) throw new LoaderError(`${file}: label ${maxLabel} implies more than ${MAX_INFERRED_CLASSES} classes; pass the label names (labels option) if that is right`);
  const names = given ?? Array.from({ length: maxLabel + 1 }, (_, k) => `class ${k}`);
  const K = Math.min(opts.numOptions ?? 4, names.length);
  const modality = opts.modality ?? known?.modality ?? 'unknown';
  const question = opts.question ?? 'Which finding does this image show?';
  const bySplit = new Map(arrays.map((a) => [a.split, a]));
  arrays.forEach(({ split, n }, s) => {
    for (let k = 0; k < n; k++) {
      if (!ok[s][k]) continue;
      records.push({ id: `${base}/${split}/${k}`, k, split });
      where.push(at(split, k));
    }
  });
  // Every item offers K of the names: all of them when K covers them (yes/no when those are the
  // names), else a seeded subset (never known to be yes/no).
  const info = rowInfo({ options: K === names.length ? names : Array.from({ length: K }, (_, i) => `option ${i}`), answer: 0, modality, questionType: 'diagnosis' });
  return {
    name: splits.length === 1 ? `${base}-${splits[0]}` : base,
    records,
    where,
    info: records.map((r) => ({ ...info, split: r.split })),
    load: async (r) => {
      const { images, labels, h, w, c } = bySplit.get(r.split)!;
      const truth = labels.data[r.k];
      const rng = new Stream(hashString(r.id));
      const others = rng.shuffle(names.map((_, i) => i).filter((i) => i !== truth)).slice(0, K - 1);
      const order = rng.shuffle([truth, ...others]);
      const px = h * w * c;
      const data = Uint8Array.from((images.data as Uint8Array).subarray(r.k * px, (r.k + 1) * px));
      const image: RawImage = { data, width: w, height: h, channels: c as 1 | 3, bitDepth: 8 };
      return { id: r.id, image, question, options: order.map((i) => names[i]), answer: order.indexOf(truth), modality, questionType: 'diagnosis' };
    },
  };
}

export function openMedMnist(file: string, opts: MedMnistOptions & OpenOptions = {}): ManifestDataset<MedMnistRecord> {
  const rows = medMnistRows(file, { ...opts, splits: [opts.split ?? 'train'] });
  return new ManifestDataset(rows.name, rows.records, rows.load);
}
