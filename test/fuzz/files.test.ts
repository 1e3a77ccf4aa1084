// Fuzz test of every file reader over mutated valid files (issue 17, "Hostile inputs"): the
// safetensors reader, .npy/.npz (MedMNIST), NIfTI (.nii, .nii.gz), DICOM, PNG, JSONL, and the
// VQA-RAD / SLAKE / PMC-VQA (CSV) / OmniMedVQA layouts. Each starts from a small valid file written
// here, then truncates, flips bytes, overwrites length and size fields with huge values, inserts
// junk, and (for text formats) puts wrong types, duplicate rows and paths escaping the root into
// the rows. Every case must load well-formed items (images decoded too) or reject with the
// format's typed error naming the file, within a time bound and without allocating what the file
// merely claims. Fixed seeds and case counts, so the outcome counts are deterministic.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import dcmjs from 'dcmjs';
import { gzipSync, zipSync } from 'fflate';
import sharp from 'sharp';
import { openJsonl, openMedMnist, openOmniMedVqa, openPmcVqa, openSlake, openVqaRad, parseNpy, readImageFile } from '../../src/data/loaders';
import { parseHeader, readSafetensors, writeSafetensorsSync } from '../../src/io/safetensors';
import type { Dataset } from '../../src/data/types';
import { Rng } from '../helpers/random';
import { checkImage, checkItem, concat, type Field, findAll, hostileField, mutateBytes, pick, Tally, within } from './harness';
import { niftiBytes, writeUnder } from '../helpers/datasets';

// Cases per format (~15 s in all on 2 cores).
const N = { safetensors: 1200, npy: 1200, npz: 600, nifti: 800, niftiGz: 300, dicom: 600, png: 300, jsonl: 500, csv: 300, json: 250 };
const VERBOSE = process.env.MEDGYM_FUZZ_VERBOSE === '1';

let dir: string;
const w = (rel: string, data: string | Uint8Array): string => writeUnder(dir, rel, data);
const report = (t: Tally): void => {
  console.log(t.summary() + (VERBOSE ? '\n' + t.topShapes() : ''));
};

/** Opens a dataset and loads (up to 8 of) its items, images included. */
async function loadAll(ds: Dataset): Promise<Awaited<ReturnType<Dataset['get']>>[]> {
  const out = [];
  for (let i = 0; i < Math.min(ds.size, 8); i++) out.push(await ds.get(i));
  return out;
}
const checkItems = (items: Parameters<typeof checkItem>[0][]): string | undefined => {
  for (const it of items) {
    const why = checkItem(it);
    if (why) return `${it.id}: ${why}`;
  }
  return undefined;
};

// ----- valid fixtures -----------------------------------------------------------------------------

const npy = (descr: string, shape: number[], bytes: Uint8Array, major = 1): Uint8Array => {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const pre = major === 1 ? 10 : 12;
  while ((pre + header.length + 1) % 64) header += ' ';
  header += '\n';
  const out = new Uint8Array(pre + header.length + bytes.length);
  out.set([0x93, ...Buffer.from('NUMPY'), major, 0]);
  if (major === 1) out.set([header.length & 255, header.length >> 8], 8);
  else Buffer.from(out.buffer).writeUInt32LE(header.length, 8);
  out.set(Buffer.from(header, 'latin1'), pre);
  out.set(bytes, pre + header.length);
  return out;
};

/** A NIfTI-1 int16 volume of varied values; with `ext`, one extension between header and data. */
const niftiFile = (nx: number, ny: number, nz: number, ext = false): Uint8Array => niftiBytes(nx, ny, nz, (x, y, z) => ((x + nx * (y + ny * z)) * 37) % 2000 - 1024, ext);
const NIFTI_FIELDS: Field[] = [
  { off: 0, type: 'i32le', values: [348, 540, 0x5c010000] },
  ...Array.from({ length: 8 }, (_, i): Field => ({ off: 40 + 2 * i, type: 'i16le', values: [2, 3, 4, 5, 1000, 30000] })),
  { off: 70, type: 'i16le', values: [2, 4, 8, 16, 64, 128, 256, 512, 768, 1536, 2304] },
  { off: 72, type: 'i16le', values: [8, 16, 32, 64, 128] },
  { off: 108, type: 'f32le', values: [348, 352, 353, 368, 1e9, -352, 400] },
  { off: 112, type: 'f32le' },
  { off: 116, type: 'f32le' },
  { off: 348, type: 'u8', values: [1] },
  { off: 352, type: 'i32le', values: [16, 32, -16, -32, 1 << 30] },
  { off: 356, type: 'i32le' },
];

function dicomFile(kind: 'ct' | 'rgb'): Uint8Array {
  const { DicomMetaDictionary, DicomDict } = dcmjs.data;
  const ct = kind === 'ct';
  const px = ct ? new Int16Array(20).map((_, i) => i * 10 - 50).buffer : new Uint8Array(4 * 5 * 3).map((_, i) => i * 4).buffer;
  const nat = {
    SOPClassUID: '1.2.840.10008.5.1.4.1.1.2', SOPInstanceUID: '1.2.3.4', Modality: ct ? 'CT' : 'XC', Rows: 4, Columns: 5,
    BitsAllocated: ct ? 16 : 8, BitsStored: ct ? 16 : 8, HighBit: ct ? 15 : 7, PixelRepresentation: ct ? 1 : 0, SamplesPerPixel: ct ? 1 : 3,
    PhotometricInterpretation: ct ? 'MONOCHROME2' : 'RGB', ...(ct ? { RescaleSlope: 1, RescaleIntercept: -1024, WindowCenter: 40, WindowWidth: 400 } : { PlanarConfiguration: 0 }),
    PixelData: [px], _vrMap: { PixelData: ct ? 'OW' : 'OB' },
  };
  const dict = new DicomDict(DicomMetaDictionary.denaturalizeDataset({ FileMetaInformationVersion: new Uint8Array([0, 1]).buffer, MediaStorageSOPClassUID: nat.SOPClassUID, MediaStorageSOPInstanceUID: '1.2.3.4', TransferSyntaxUID: '1.2.840.10008.1.2.1', ImplementationClassUID: '1.2.3.4.5' }));
  dict.dict = DicomMetaDictionary.denaturalizeDataset(nat);
  return new Uint8Array(dict.write());
}

/** Value and length fields of the explicit-VR little-endian elements a reader depends on. */
function dicomFields(buf: Uint8Array): Field[] {
  const long = new Set(['OB', 'OW', 'OF', 'OD', 'OL', 'SQ', 'UT', 'UN', 'UC', 'UR']);
  const out: Field[] = [];
  const tags: [number, number, number[]][] = [
    [0x0002, 0x0000, [0, 10, 0x7fffffff]], // meta group length
    [0x0002, 0x0010, []], // transfer syntax
    [0x0028, 0x0002, [0, 2, 3, 4]], // SamplesPerPixel
    [0x0028, 0x0006, [1, 2]], // PlanarConfiguration
    [0x0028, 0x0010, [0, 2, 5, 65535]], // Rows
    [0x0028, 0x0011, [0, 4, 65535]], // Columns
    [0x0028, 0x0100, [0, 1, 8, 12, 16, 32]], // BitsAllocated
    [0x0028, 0x0103, [1, 2]], // PixelRepresentation
    [0x7fe0, 0x0010, [0, 2, 0xffffffff]], // PixelData
  ];
  for (const [g, e, values] of tags) {
    for (const at of findAll(buf, [g & 255, g >> 8, e & 255, e >> 8])) {
      const vr = String.fromCharCode(buf[at + 4], buf[at + 5]);
      if (!/^[A-Z]{2}$/.test(vr)) continue;
      if (long.has(vr)) out.push({ off: at + 8, type: 'u32le', values });
      else {
        out.push({ off: at + 6, type: 'u16le', values: [0, 1, 3, 0xffff] });
        if (vr === 'US') out.push({ off: at + 8, type: 'u16le', values });
        if (vr === 'UL') out.push({ off: at + 8, type: 'u32le', values });
      }
    }
  }
  return out;
}

const png = (channels: 1 | 3): Promise<Buffer> =>
  sharp(Buffer.from(Array.from({ length: 16 * 12 * channels }, (_, i) => (i * 7) % 251)), { raw: { width: 16, height: 12, channels } })
    .toColourspace(channels === 1 ? 'b-w' : 'srgb')
    .png()
    .toBuffer();

/** A PNG with its IHDR width or height replaced, CRC fixed so decoders see the claimed size. */
function pngWithSize(src: Uint8Array, rng: Rng): Uint8Array {
  const out = Buffer.from(src);
  const v = pick(rng, [0, 1, 16383, 65535, 100000, 0x7fffffff, 0xffffffff]);
  out.writeUInt32BE(v, rng.next() < 0.5 ? 16 : 20);
  if (rng.next() < 0.3) out[24] = pick(rng, [1, 2, 4, 8, 16, 3]); // bit depth
  out.writeUInt32BE(zlib.crc32(out.subarray(12, 29)), 29);
  return out;
}

// ----- text mutations -----------------------------------------------------------------------------

const HOSTILE_VALUES: unknown[] = [
  null, true, 0, -1, 1.5, 1e308, 2 ** 53 + 2, '', ' ', 'A', 'Z', 'yes', 'no', 'B:MRI', [], {}, [1, 2, 3, 4], [0, 0, 1e300, -1e300], ['a', 'b'], { a: 1 },
  'x'.repeat(5000), '\u0000', '__proto__', '../outside.png', '../../../../../../etc/passwd', '/etc/passwd', 'link/hostname', 'img', 'dir.nii', 'dir.dcm',
  'img/a.png', 'img/b.png', 'img/vol.nii.gz', 'img/ct.dcm', 'img/broken.png', 'img/none.png', 'img/fifo.png',
];

/** Mutates one JSON value tree in place: a field set to a hostile value, deleted, an entry duplicated… */
function mutateJson(rng: Rng, rows: Record<string, unknown>[], keys: string[]): unknown {
  const objects = rows.filter((r) => r !== null && typeof r === 'object' && !Array.isArray(r));
  const row = objects.length ? pick(rng, objects) : undefined;
  switch (rng.int(0, 8)) {
    case 0:
    case 1:
    case 2:
      if (row) row[pick(rng, keys)] = pick(rng, HOSTILE_VALUES);
      return rows;
    case 3:
      if (row) delete row[pick(rng, keys)];
      return rows;
    case 4: // duplicate rows
      for (let k = rng.int(1, 4); k > 0 && row; k--) rows.push({ ...row });
      return rows;
    case 5: // an entry of the wrong kind
      rows.splice(rng.int(0, rows.length + 1), 0, pick(rng, [null, 1, 'row', [], [1, 2]]) as unknown as Record<string, unknown>);
      return rows;
    case 6: // the whole document of the wrong kind
      return pick(rng, [{}, { data: rows }, null, 42, 'x', []]);
    default: // every row's field at once
      const k = pick(rng, keys);
      const v = pick(rng, HOSTILE_VALUES);
      for (const r of objects) r[k] = v;
      return rows;
  }
}

/** Text-level damage: a hostile number literal, a lone quote, a BOM, CRLF, a long line… */
function mutateText(rng: Rng, text: string): string {
  switch (rng.int(0, 6)) {
    case 0: {
      const nums = [...text.matchAll(/-?\d+(\.\d+)?/g)];
      if (!nums.length) return text;
      const m = pick(rng, nums);
      return text.slice(0, m.index) + pick(rng, ['1e400', '-1e400', '9007199254740993', '-0', '1e-400', '123456789012345678901234567890']) + text.slice(m.index + m[0].length);
    }
    case 1: {
      const p = rng.int(0, text.length + 1);
      return text.slice(0, p) + pick(rng, ['"', ',', '\n', '\r', '\\', '{', ']', '\u0000', '\ufeff', '"\n"']) + text.slice(p);
    }
    case 2:
      return '\ufeff' + text;
    case 3:
      return text.replace(/\n/g, '\r\n');
    case 4: {
      const lines = text.split('\n');
      lines.splice(rng.int(0, lines.length + 1), 0, pick(rng, ['null', '[]', '1', '"s"', '{}', 'x'.repeat(100_000), '{"image":', '\t']));
      return lines.join('\n');
    }
    default: {
      const lines = text.split('\n');
      if (rng.next() < 0.5) lines.splice(rng.int(0, lines.length), 1);
      else lines.push(...lines.slice(0, rng.int(1, lines.length + 1)));
      return lines.join('\n');
    }
  }
}

/** The mutated bytes of a text/JSON file: structural (parse, mutate, print), text or byte level. */
function mutateDoc(rng: Rng, valid: string, keys: string[], jsonl: boolean): Uint8Array {
  const r = rng.next();
  if (r < 0.5) {
    const rows = (jsonl ? valid.trim().split('\n').map((l) => JSON.parse(l)) : JSON.parse(valid)) as Record<string, unknown>[];
    let doc = mutateJson(rng, rows, keys);
    if (rng.next() < 0.3) doc = mutateJson(rng, Array.isArray(doc) ? (doc as Record<string, unknown>[]) : [], keys);
    const text = jsonl && Array.isArray(doc) ? doc.map((x) => JSON.stringify(x)).join('\n') + '\n' : JSON.stringify(doc);
    return Buffer.from(text);
  }
  if (r < 0.8) return Buffer.from(mutateText(rng, valid));
  return mutateBytes(rng, Buffer.from(valid));
}

// ----- setup --------------------------------------------------------------------------------------

let pngGrey: Buffer;
let pngRgb: Buffer;

let dcmjsLevel: number;
beforeAll(async () => {
  // dcmjs logs every oddity it skips over; the outcome is what this test checks.
  dcmjsLevel = dcmjs.log.getLevel();
  dcmjs.log.setLevel('silent');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-fuzz-'));
  pngGrey = await png(1);
  pngRgb = await png(3);
  w('outside.png', pngGrey); // outside every dataset root below
  for (const root of ['jsonl', 'pmc/images', 'rad/VQA_RAD Image Folder', 'slake/imgs', 'omni']) {
    w(`${root}/img/a.png`, pngGrey);
    w(`${root}/img/b.png`, pngRgb);
    w(`${root}/img/vol.nii.gz`, gzipSync(niftiFile(5, 4, 3)));
    w(`${root}/img/ct.dcm`, dicomFile('ct'));
    w(`${root}/img/broken.png`, 'not a png');
    fs.mkdirSync(path.join(dir, root, 'dir.nii'));
    fs.mkdirSync(path.join(dir, root, 'dir.dcm'));
    fs.symlinkSync('/etc', path.join(dir, root, 'link'));
    try {
      execFileSync('mkfifo', [path.join(dir, root, 'img', 'fifo.png')]);
    } catch {
      // no mkfifo: the FIFO case is skipped
    }
  }
});
afterAll(() => {
  dcmjs.log.setLevel(dcmjsLevel as Parameters<typeof dcmjs.log.setLevel>[0]);
  fs.rmSync(dir, { recursive: true, force: true });
});

// ----- the formats ----------------------------------------------------------------------------------

test('safetensors', async () => {
  const rng = new Rng(17);
  const good = path.join(dir, 'good.safetensors');
  writeSafetensorsSync(good, [
    { name: 'wte.weight', shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) },
    { name: 'ln.bias', shape: [4], data: new Float32Array(4).fill(0.5), dtype: 'BF16' },
    { name: 'empty', shape: [0, 3], data: new Float32Array(0) },
  ], { config: '{"d":4}' });
  const valid = new Uint8Array(fs.readFileSync(good));
  const n = Number(Buffer.from(valid).readBigUInt64LE(0));
  const headerText = Buffer.from(valid.subarray(8, 8 + n)).toString('utf8');
  const data = valid.subarray(8 + n);
  const sizes: Record<string, number> = { F64: 8, I64: 8, F32: 4, I32: 4, BF16: 2, F16: 2, I16: 2, I8: 1, U8: 1, BOOL: 1 };
  const t = new Tally('safetensors', ['SafetensorsError']);
  const file = path.join(dir, 'case.safetensors');
  for (let c = 0; c < N.safetensors; c++) {
    let bytes: Uint8Array;
    let what: string;
    const r = rng.next();
    if (r < 0.35) {
      bytes = mutateBytes(rng, valid);
      what = 'bytes';
    } else if (r < 0.5) {
      bytes = Uint8Array.from(valid);
      Buffer.from(bytes.buffer).writeBigUInt64LE(BigInt(pick(rng, [0, 1, n - 1, n + 1, valid.length, 2 ** 32, 2 ** 53])));
      if (rng.next() < 0.2) Buffer.from(bytes.buffer).writeBigUInt64LE(2n ** 64n - 1n);
      what = 'header length';
    } else {
      // A damaged header re-encoded with a consistent length: the checks past the length prefix.
      let h = headerText;
      if (rng.next() < 0.6) {
        const json = JSON.parse(h) as Record<string, { dtype: string; shape: unknown; data_offsets: unknown } | Record<string, unknown>>;
        const names = Object.keys(json);
        const e = json[pick(rng, names.filter((k) => k !== '__metadata__'))] as Record<string, unknown>;
        switch (rng.int(0, 7)) {
          case 0: e.dtype = pick(rng, ['toString', '__proto__', 'constructor', 'hasOwnProperty', 'Q4', '', 'F64', 'BOOL', 'U8', 'I64', 7]); break;
          case 1: e.shape = pick(rng, [[2 ** 40, 2 ** 40], [2 ** 53], [-1], [1.5], ['2'], 3, [], [[2]], [2 ** 26, 2 ** 26, 2 ** 26]]); break;
          case 2: e.data_offsets = pick(rng, [[0, 2 ** 53], [0, 2 ** 60], [-4, 0], [8, 4], [0], [0, 4, 8], 'x', [0, '24'], [1e308, 1e308]]); break;
          case 3: json.__metadata__ = pick(rng, [{ a: 1 }, [], 'x', null, { k: { nested: true } }]) as Record<string, unknown>; break;
          case 4: Object.defineProperty(json, pick(rng, ['__proto__', 'constructor', 'x'.repeat(1000), '']), { value: { ...e }, enumerable: true }); break;
          case 5: delete json[pick(rng, names)]; break;
          default: json[pick(rng, names)] = pick(rng, [null, 1, 'x', [], { dtype: 'F32' }]) as Record<string, unknown>;
        }
        h = JSON.stringify(json);
      } else h = mutateText(rng, h);
      const hb = Buffer.from(h);
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(hb.length));
      bytes = concat(len, hb, rng.next() < 0.8 ? data : mutateBytes(rng, data));
      what = `header ${h.slice(0, 160)}`;
    }
    fs.writeFileSync(file, bytes);
    await t.run(
      { what, bytes: bytes.length, names: [file] },
      () => {
        // As the checkpoint loader reads it (header bytes first, bounded), then whole.
        const b = fs.readFileSync(file);
        const claimed = b.length >= 8 ? Number(b.readBigUInt64LE(0)) : 0;
        parseHeader(b.subarray(0, Math.min(b.length, 8 + Math.min(claimed, 4 << 20))), b.length, file, { maxHeaderBytes: 4 << 20 });
        return readSafetensors(file);
      },
      (res) => {
        for (const [name, tensor] of res.tensors) {
          const count = tensor.shape.reduce((a, b) => a * b, 1);
          if (tensor.bytes.length !== count * sizes[tensor.dtype]) return `${name}: ${tensor.bytes.length} bytes for [${tensor.shape}] ${tensor.dtype}`;
        }
        return undefined;
      },
    );
  }
  report(t);
  t.assert(15, N.safetensors / 2);
});

test('.npy', async () => {
  const rng = new Rng(18);
  const fixtures = [
    npy('|u1', [3, 4, 4], Uint8Array.from({ length: 48 }, (_, i) => i)),
    npy('<i8', [3, 1], new Uint8Array(new BigInt64Array([0n, 2n, 1n]).buffer)),
    npy('<f4', [2, 2], new Uint8Array(new Float32Array([1, -2, 3.5, NaN]).buffer)),
    npy('<u2', [5], new Uint8Array(new Uint16Array([1, 2, 3, 65535, 0]).buffer), 2),
  ];
  const t = new Tally('npy', ['LoaderError']);
  for (let c = 0; c < N.npy; c++) {
    const valid = pick(rng, fixtures);
    const major = valid[6];
    let bytes: Uint8Array;
    const r = rng.next();
    if (r < 0.4) bytes = mutateBytes(rng, valid);
    else if (r < 0.55) bytes = hostileField(rng, valid, [{ off: 6, type: 'u8', values: [0, 1, 2, 3, 4] }, major === 1 ? { off: 8, type: 'u16le' } : { off: 8, type: 'u32le' }]);
    else {
      const pre = major === 1 ? 10 : 12;
      const hlen = major === 1 ? valid[8] | (valid[9] << 8) : Buffer.from(valid).readUInt32LE(8);
      let header = Buffer.from(valid.subarray(pre, pre + hlen)).toString('latin1');
      const shape = /'shape': \(([^)]*)\)/.exec(header)![1];
      const descr = /'descr': '([^']*)'/.exec(header)![1];
      const body = valid.subarray(pre + hlen);
      const newShape = pick(rng, ['99999999999, 4', '-1, 4', '0,', '1e3,', 'x', '2**64', '', '4, 4, 4, 4, 4, 4, 4, 4', '18446744073709551616,', '3, 4, 4', '1, 1', '0, 0', '-3, -1', '1.5,', '3,,4', '9007199254740993,']);
      if (rng.next() < 0.6) header = header.replace(`(${shape})`, `(${newShape})`);
      else if (rng.next() < 0.7) header = header.replace(`'${descr}'`, `'${pick(rng, ['<f8', '>u2', '|b1', '<c16', '<U10', '|O', '<i8', '<u8', '', '<f2', 'u1', '<i4'])}'`);
      else header = pick(rng, [header.replace('False', 'True'), header.replace(`'shape'`, `'shap'`), '{}', header.slice(0, rng.int(0, header.length)), header.replace(/'/g, '"')]);
      // The damaged header with a consistent length prefix, and the original data.
      const hb = Buffer.from(header, 'latin1');
      const head = new Uint8Array(pre);
      head.set(valid.subarray(0, 8));
      if (major === 1) head.set([hb.length & 255, hb.length >> 8], 8);
      else Buffer.from(head.buffer).writeUInt32LE(hb.length, 8);
      bytes = concat(head, hb, body);
    }
    await t.run(
      { what: Buffer.from(bytes.subarray(0, 80)).toString('latin1'), bytes: bytes.length, names: ['case.npy'] },
      () => parseNpy(bytes, 'case.npy'),
      (a) => {
        const count = a.shape.reduce((x, y) => x * y, 1);
        if (!a.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) return `shape (${a.shape})`;
        if (a.data.length !== count) return `${a.data.length} values for shape (${a.shape})`;
        return undefined;
      },
    );
  }
  report(t);
  t.assert(30, N.npy / 2);
});

/** Offsets of the size, count and offset fields of every zip header. */
function zipFields(buf: Uint8Array): Field[] {
  const out: Field[] = [];
  for (const at of findAll(buf, [0x50, 0x4b, 3, 4])) out.push({ off: at + 18, type: 'u32le' }, { off: at + 22, type: 'u32le' }, { off: at + 26, type: 'u16le' }, { off: at + 28, type: 'u16le' }, { off: at + 8, type: 'u16le', values: [0, 8, 12, 99] });
  for (const at of findAll(buf, [0x50, 0x4b, 1, 2])) out.push({ off: at + 20, type: 'u32le' }, { off: at + 24, type: 'u32le' }, { off: at + 28, type: 'u16le' }, { off: at + 30, type: 'u16le' }, { off: at + 42, type: 'u32le' }, { off: at + 10, type: 'u16le', values: [0, 8, 99] });
  for (const at of findAll(buf, [0x50, 0x4b, 5, 6])) out.push({ off: at + 8, type: 'u16le' }, { off: at + 10, type: 'u16le' }, { off: at + 12, type: 'u32le' }, { off: at + 16, type: 'u32le' });
  return out;
}

test('.npz (MedMNIST)', async () => {
  const rng = new Rng(19);
  const n = 6;
  const labels = new BigInt64Array([0n, 1n, 2n, 3n, 1n, 0n]);
  const arrays = (grey: boolean): Record<string, Uint8Array> => ({
    'train_images.npy': grey ? npy('|u1', [n, 4, 5], Uint8Array.from({ length: n * 20 }, (_, i) => i)) : npy('|u1', [n, 4, 5, 3], Uint8Array.from({ length: n * 60 }, (_, i) => i % 256)),
    'train_labels.npy': npy('<i8', [n, 1], new Uint8Array(labels.buffer)),
  });
  const t = new Tally('npz', ['LoaderError']);
  for (let c = 0; c < N.npz; c++) {
    const grey = rng.next() < 0.5;
    // An unknown name (label names come from the labels) or a known one (names from MEDMNIST_INFO).
    const name = grey ? 'fuzzmnist.npz' : 'bloodmnist.npz';
    const files = arrays(grey);
    const stored = rng.next() < 0.4;
    let bytes: Uint8Array;
    let what: string;
    const r = rng.next();
    if (r < 0.35) {
      const z = zipSync(files, { level: stored ? 0 : 6 });
      const k = rng.int(1, 4);
      bytes = z;
      for (let i = 0; i < k; i++) bytes = hostileField(rng, bytes, zipFields(z));
      what = `${k} zip fields`;
    } else if (r < 0.6) {
      bytes = mutateBytes(rng, zipSync(files, { level: stored ? 0 : 6 }));
      what = 'zip bytes';
    } else {
      // A damaged array inside an intact zip: labels out of range, shapes, dtypes.
      const key = rng.next() < 0.5 ? 'train_labels.npy' : 'train_images.npy';
      const s = rng.next();
      if (s < 0.4 && key === 'train_labels.npy') {
        const l = new BigInt64Array(labels);
        l[rng.int(0, n)] = pick(rng, [-1n, -5n, 3n, 8n, 255n, 1000n, 10n ** 9n, 2n ** 40n, 2n ** 62n, -(2n ** 63n)]);
        files[key] = npy('<i8', [n, 1], new Uint8Array(l.buffer));
      } else if (s < 0.7) {
        files[key] = pick(rng, [
          npy('|u1', [n, 4, 5], new Uint8Array(n * 20)),
          npy('|u1', [n, 0, 5], new Uint8Array(0)),
          npy('|u1', [0, 4, 5], new Uint8Array(0)),
          npy('|u1', [n], new Uint8Array(n)),
          npy('<f4', [n, 1], new Uint8Array(new Float32Array([0, 1.5, 2, NaN, 1, 0]).buffer)),
          npy('<f8', [n], new Uint8Array(new Float64Array([0, 1, 2, Infinity, 1, 0]).buffer)),
          npy('|u1', [n, 2], new Uint8Array(n * 2)),
          npy('|u1', [n + 1, 1], new Uint8Array(n + 1)),
          npy('|u1', [n, 4, 5, 2], new Uint8Array(n * 40)),
          npy('|u1', [n, 4, 5, 3, 1], new Uint8Array(n * 60)),
        ]);
      } else files[key] = mutateBytes(rng, files[key]);
      if (rng.next() < 0.2) delete files[pick(rng, Object.keys(files))];
      if (rng.next() < 0.2) files[pick(rng, ['__proto__', 'constructor', 'test_images.npy'])] = new Uint8Array(8);
      bytes = zipSync(files, { level: stored ? 0 : 6 });
      what = `inner ${key}`;
    }
    const file = w(`npz/${name}`, bytes);
    await t.run(
      { what, bytes: bytes.length, names: [name] },
      async () => loadAll(openMedMnist(file)),
      checkItems,
    );
  }
  report(t);
  t.assert(20, N.npz / 2);
});

test('NIfTI (.nii)', async () => {
  const rng = new Rng(20);
  const fixtures = [niftiFile(5, 4, 3), niftiFile(5, 4, 3, true)];
  const t = new Tally('nifti', ['LoaderError']);
  for (let c = 0; c < N.nifti; c++) {
    const valid = pick(rng, fixtures);
    let bytes: Uint8Array;
    if (rng.next() < 0.35) bytes = mutateBytes(rng, valid);
    else {
      bytes = valid;
      for (let k = rng.int(1, 4); k > 0; k--) bytes = hostileField(rng, bytes, NIFTI_FIELDS);
    }
    const file = w('nii/case.nii', bytes);
    const opts = rng.next() < 0.5 ? {} : { axis: rng.int(0, 3) as 0 | 1 | 2, slice: rng.int(-3, 4) };
    await t.run({ what: `${Buffer.from(bytes.subarray(40, 74)).toString('hex')} ${JSON.stringify(opts)}`, bytes: bytes.length, names: ['case.nii'] }, () => readImageFile(file, opts), checkImage);
  }
  report(t);
  t.assert(20, N.nifti / 3);
});

test('NIfTI (.nii.gz)', async () => {
  const rng = new Rng(21);
  const valid = niftiFile(5, 4, 3);
  const t = new Tally('nifti-gz', ['LoaderError']);
  for (let c = 0; c < N.niftiGz; c++) {
    let bytes: Uint8Array;
    const r = rng.next();
    if (r < 0.4) bytes = gzipSync(rng.next() < 0.5 ? mutateBytes(rng, valid) : hostileField(rng, valid, NIFTI_FIELDS));
    else if (r < 0.7) {
      const gz = gzipSync(valid);
      // ISIZE (the claimed uncompressed size, last 4 bytes) and the header flags.
      bytes = hostileField(rng, gz, [{ off: gz.length - 4, type: 'u32le', values: [0, 1, 0xfffffff0] }, { off: gz.length - 8, type: 'u32le' }, { off: 3, type: 'u8', values: [4, 8, 0x1f] }]);
    } else bytes = mutateBytes(rng, gzipSync(valid));
    const file = w('nii/case.nii.gz', bytes);
    await t.run({ what: 'gz', bytes: bytes.length, names: ['case.nii.gz'] }, () => readImageFile(file), checkImage);
  }
  report(t);
  t.assert(10, N.niftiGz / 3);
});

test('DICOM', async () => {
  const rng = new Rng(22);
  const fixtures = [dicomFile('ct'), dicomFile('rgb')];
  const fields = fixtures.map(dicomFields);
  expect(fields[0].length).toBeGreaterThan(10);
  const t = new Tally('dicom', ['LoaderError']);
  for (let c = 0; c < N.dicom; c++) {
    const k = rng.int(0, 2);
    let bytes: Uint8Array;
    let what: string;
    const r = rng.next();
    if (r < 0.4) {
      bytes = mutateBytes(rng, fixtures[k]);
      what = 'bytes';
    } else if (r < 0.9) {
      bytes = fixtures[k];
      for (let i = rng.int(1, 4); i > 0; i--) bytes = hostileField(rng, bytes, fields[k]);
      what = 'fields';
    } else {
      // Another transfer syntax (same length, so the meta group stays consistent).
      const ts = Buffer.from('1.2.840.10008.1.2.1\0');
      const at = findAll(fixtures[k], [...ts.subarray(0, 19)])[0];
      bytes = Uint8Array.from(fixtures[k]);
      bytes.set(Buffer.from(pick(rng, ['1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.1.99', '1.2.840.10008.1.2.2\0', '1.2.840.10008.1.2\0\0\0', 'xxxxxxxxxxxxxxxxxxxx']).slice(0, 20)), at);
      what = 'transfer syntax';
    }
    const file = w(`dcm/case${k}.dcm`, bytes);
    await t.run({ what, bytes: bytes.length, names: [`case${k}.dcm`] }, () => readImageFile(file), checkImage);
  }
  report(t);
  t.assert(20, N.dicom / 3);
});

test('PNG (through sharp)', async () => {
  const rng = new Rng(23);
  const t = new Tally('png', ['LoaderError']);
  for (let c = 0; c < N.png; c++) {
    const valid = rng.next() < 0.5 ? pngGrey : pngRgb;
    const bytes = rng.next() < 0.6 ? mutateBytes(rng, valid) : pngWithSize(valid, rng);
    const file = w('png/case.png', bytes);
    await t.run({ what: 'png', bytes: bytes.length, names: ['case.png'] }, () => readImageFile(file), checkImage);
  }
  report(t);
  t.assert(8, N.png / 3); // libpng checks CRCs: few damaged PNGs still decode
});

test('JSONL', async () => {
  const rng = new Rng(24);
  const valid =
    [
      { image: 'img/a.png', question: 'Which?', options: ['x', 'y', 'z'], answer: 'B', modality: 'ct', question_type: 'diagnosis', box: [1, 2, 8, 9] },
      { id: 'two', image: 'img/b.png', question: 'Color?', options: ['red', 'grey'], answer: 'grey' },
      { id: 3, image: 'img/vol.nii.gz', slice: 1, axis: 2, question: 'Organ?', answer: 'Liver' },
      { image: 'img/ct.dcm', question: 'Dense?', options: ['yes', 'no'], answer: 0 },
    ]
      .map((o) => JSON.stringify(o))
      .join('\n') + '\n';
  const keys = ['id', 'image', 'question', 'options', 'answer', 'modality', 'question_type', 'box', 'slice', 'axis', '__proto__'];
  const t = new Tally('jsonl', ['LoaderError']);
  for (let c = 0; c < N.jsonl; c++) {
    const bytes = mutateDoc(rng, valid, keys, true);
    const file = w('jsonl/data.jsonl', bytes);
    await t.run({ what: Buffer.from(bytes).toString('utf8').slice(0, 300), bytes: bytes.length, names: ['data.jsonl'] }, async () => loadAll(openJsonl(file)), checkItems);
  }
  report(t);
  t.assert(20, N.jsonl / 3);
});

test('PMC-VQA (CSV)', async () => {
  const rng = new Rng(25);
  const header = ['Figure_path', 'Question', 'Answer', 'Choice A', 'Choice B', 'Choice C', 'Choice D', 'Answer_label'];
  const rows = [
    ['img/a.png', 'What is shown, here?', 'B:MRI', 'A:CT', ' B:MRI', 'C:PET', 'D:"US"', 'B'],
    ['img/b.png', 'Which one?', 'A:CT', 'A:CT', 'B:MRI', '', '', 'A'],
    ['img/ct.dcm', 'Window?', 'C:bone', 'A:lung', 'B:soft', 'C:bone', 'D:none', 'C'],
  ];
  const cell = (s: string): string => (/[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  const csv = (rs: string[][]): string => rs.map((r) => r.map(cell).join(',')).join('\n') + '\n';
  const valid = csv([header, ...rows]);
  const t = new Tally('pmc-vqa', ['LoaderError']);
  for (let c = 0; c < N.csv; c++) {
    let bytes: Uint8Array;
    const r = rng.next();
    if (r < 0.5) {
      const rs = [header.slice(), ...rows.map((x) => x.slice())];
      for (let k = rng.int(1, 3); k > 0; k--) {
        const s = rng.int(0, 5);
        const row = rs[rng.int(s === 0 ? 0 : 1, rs.length)];
        if (s <= 1) row[rng.int(0, row.length)] = String(pick(rng, HOSTILE_VALUES.filter((v) => typeof v === 'string')));
        else if (s === 2) row.splice(rng.int(0, row.length), 1);
        else if (s === 3) rs.push(rs[rng.int(1, rs.length)].slice());
        else row.push('extra', '"');
      }
      bytes = Buffer.from(csv(rs));
    } else if (r < 0.8) bytes = Buffer.from(mutateText(rng, valid));
    else bytes = mutateBytes(rng, Buffer.from(valid));
    w('pmc/train.csv', bytes);
    await t.run({ what: Buffer.from(bytes).toString('utf8').slice(0, 300), bytes: bytes.length, names: ['train.csv'] }, async () => loadAll(openPmcVqa(path.join(dir, 'pmc'))), checkItems);
  }
  report(t);
  t.assert(10, N.csv / 4);
});

test('VQA-RAD, SLAKE, OmniMedVQA (JSON)', async () => {
  const rng = new Rng(26);
  const layouts = [
    {
      name: 'vqa-rad',
      file: 'rad/VQA_RAD Dataset Public.json',
      open: () => openVqaRad(path.join(dir, 'rad')),
      rows: [
        { qid: 1, image_name: 'img/a.png', question: 'Is there a mass?', answer: 'Yes', answer_type: 'CLOSED', question_type: 'PRES', image_organ: 'CHEST' },
        { qid: 2, image_name: 'img/ct.dcm', question: 'Where?', answer: 'left lung', answer_type: 'OPEN', question_type: 'POS', image_organ: 'HEAD' },
      ],
    },
    {
      name: 'slake',
      file: 'slake/train.json',
      open: () => openSlake(path.join(dir, 'slake')),
      rows: [
        { qid: 7, img_name: 'img/b.png', question: 'Which organ?', answer: 'Lung', answer_type: 'OPEN', modality: 'X-Ray', content_type: 'Organ', q_lang: 'en' },
        { qid: 8, img_name: 'img/vol.nii.gz', question: 'Abnormal?', answer: 'No', answer_type: 'CLOSED', modality: 'CT', q_lang: 'en' },
      ],
    },
    {
      name: 'omnimedvqa',
      file: 'omni/QA_information/Open-access/ACRIMA.json',
      open: () => openOmniMedVqa(path.join(dir, 'omni')),
      rows: [
        { question_id: 'A1', question_type: 'Disease Diagnosis', question: 'Is this glaucoma?', gt_answer: 'No', option_A: 'Yes', option_B: 'No', image_path: 'img/a.png', modality_type: 'Fundus' },
        { question_id: 'A2', question: 'Which?', gt_answer: 'CT', option_A: 'MRI', option_B: 'CT', option_C: 'PET', image_path: 'img/b.png' },
      ],
    },
  ];
  const tallies: Tally[] = [];
  for (const L of layouts) {
    const valid = JSON.stringify(L.rows);
    const keys = [...new Set(L.rows.flatMap((r) => Object.keys(r)))];
    const t = new Tally(L.name, ['LoaderError']);
    for (let c = 0; c < N.json; c++) {
      const bytes = mutateDoc(rng, valid, keys, false);
      w(L.file, bytes);
      await t.run({ what: Buffer.from(bytes).toString('utf8').slice(0, 300), bytes: bytes.length, names: [path.basename(L.file)] }, async () => loadAll(L.open()), checkItems);
    }
    report(t);
    tallies.push(t);
  }
  for (const t of tallies) t.assert(10, N.json / 4);
});

// ----- claimed sizes: rejected before anything that size is allocated ---------------------------

describe('huge claimed sizes are rejected up front', () => {
  const quick = async (fn: () => unknown, re: RegExp): Promise<void> => {
    const m0 = process.memoryUsage().arrayBuffers;
    const t0 = performance.now();
    await expect((async () => fn())()).rejects.toThrow(re);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(process.memoryUsage().arrayBuffers - m0).toBeLessThan(64 << 20);
  };

  test('safetensors: header length and tensor sizes', async () => {
    const f = path.join(dir, 'claim.safetensors');
    const head = Buffer.alloc(8);
    head.writeBigUInt64LE(2n ** 40n);
    fs.writeFileSync(f, concat(head, Buffer.from('{}')));
    await quick(() => readSafetensors(f), /claim\.safetensors: header length \d+ exceeds the limit/);
    const json = Buffer.from(JSON.stringify({ w: { dtype: 'F32', shape: [2 ** 20, 2 ** 20], data_offsets: [0, 2 ** 42] } }));
    head.writeBigUInt64LE(BigInt(json.length));
    fs.writeFileSync(f, concat(head, json, new Uint8Array(16)));
    await quick(() => readSafetensors(f), /claim\.safetensors: truncated: tensor 'w' ends at byte \d+ of a 16-byte data section/);
  });

  test('.npy: a shape far larger than the data', async () => {
    await quick(() => parseNpy(npy('<f8', [2 ** 40, 2 ** 10], new Uint8Array(64)), 'claim.npy'), /claim\.npy: data is truncated/);
  });

  test('.npz: zip entries claiming gigabytes', async () => {
    const z = zipSync({ 'train_images.npy': npy('|u1', [1, 2, 2], new Uint8Array(4)), 'train_labels.npy': npy('|u1', [1, 1], new Uint8Array(1)) });
    const bytes = Buffer.from(z);
    // the uncompressed-size fields of the local and the central headers
    for (const at of findAll(z, [0x50, 0x4b, 3, 4])) bytes.writeUInt32LE(0xfffffff0, at + 22);
    for (const at of findAll(z, [0x50, 0x4b, 1, 2])) bytes.writeUInt32LE(0xfffffff0, at + 24);
    const f = w('claim/fuzzmnist.npz', bytes);
    await quick(() => openMedMnist(f), /fuzzmnist\.npz: .*(size|zip)/);
  });

  test('.npz: labels claiming a billion classes', async () => {
    const f = w('claim/fuzzmnist.npz', zipSync({ 'train_images.npy': npy('|u1', [1, 2, 2], new Uint8Array(4)), 'train_labels.npy': npy('<i8', [1, 1], new Uint8Array(new BigInt64Array([10n ** 9n]).buffer)) }));
    await quick(() => openMedMnist(f), /fuzzmnist\.npz: label 1000000000/);
  });

  test('.nii.gz: a gzip trailer claiming 4 GB', async () => {
    const gz = Buffer.from(gzipSync(niftiFile(5, 4, 3)));
    gz.writeUInt32LE(0xfffffff0, gz.length - 4);
    const f = w('claim/vol.nii.gz', gz);
    await quick(() => readImageFile(f), /vol\.nii\.gz: /);
  });

  test('.nii: dims claiming 32767^3 voxels', async () => {
    const b = Buffer.from(niftiFile(5, 4, 3));
    [1, 2, 3].forEach((i) => b.writeInt16LE(32767, 40 + 2 * i));
    const f = w('claim/vol.nii', b);
    await quick(() => readImageFile(f), /vol\.nii: NIfTI data is truncated/);
  });

  test('DICOM: an element length claiming 4 GB (dcmjs would allocate it)', async () => {
    const b = Buffer.from(dicomFile('ct'));
    b.writeUInt32LE(0xfffffff0, findAll(b, [0xe0, 0x7f, 0x10, 0, 0x4f, 0x57])[0] + 8); // PixelData (OW) length
    const f = w('claim/len.dcm', b);
    await quick(() => readImageFile(f), /len\.dcm: not a readable DICOM file \(a value of \d+ bytes at byte \d+ runs past the end of the data/);
  });

  test('PNG: a header claiming 16000 x 16000 pixels (under the pixel limit of sharp)', async () => {
    const b = Buffer.from(pngGrey);
    b.writeUInt32BE(16000, 16);
    b.writeUInt32BE(16000, 20);
    b.writeUInt32BE(zlib.crc32(b.subarray(12, 29)), 29);
    const f = w('claim/big.png', b);
    await quick(() => readImageFile(f), /big\.png: 16000x16000 pixels claimed by a \d+-byte file/);
  });

  test('missing and non-regular files', async () => {
    await quick(() => readSafetensors(path.join(dir, 'none.safetensors')), /none\.safetensors: cannot read/);
    await quick(() => readSafetensors(dir), /cannot read \(not a regular file\)/);
    await quick(() => readImageFile(path.join(dir, 'jsonl', 'dir.nii')), /dir\.nii is not a regular file/);
    await quick(() => openMedMnist(path.join(dir, 'jsonl')), /is not a regular file/);
  });

  test('DICOM: Rows x Columns far beyond PixelData', async () => {
    const b = Buffer.from(dicomFile('ct'));
    for (const e of [0x10, 0x11]) b.writeUInt16LE(65535, findAll(b, [0x28, 0, e, 0, 0x55, 0x53])[0] + 8); // Rows, Columns (US)
    const f = w('claim/ct.dcm', b);
    await quick(() => readImageFile(f), /ct\.dcm: PixelData is truncated/);
  });
});

// ----- hangs found by the fuzzer, pinned ----------------------------------------------------------

describe('inputs that used to hang', () => {
  test('a NIfTI extension chain that points back at itself (nifti-reader-js loops forever)', async () => {
    const b = Buffer.from(niftiFile(5, 4, 3, true));
    b.writeInt32LE(16, 352); // first extension: 16 bytes, to 368
    b.writeInt32LE(-16, 368); // second: back to 352, and so on
    const f = w('hang/ext.nii', b);
    const img = await within(() => readImageFile(f), 2000);
    expect(img).toMatchObject({ width: 5, height: 4 }); // extensions are not read
  });

  test('a dataset image that is a FIFO (a blocking read)', async () => {
    const fifo = path.join(dir, 'jsonl', 'img', 'fifo.png');
    if (!fs.existsSync(fifo)) return; // no mkfifo here
    const ds = openJsonl(w('jsonl/fifo.jsonl', JSON.stringify({ image: 'img/fifo.png', question: 'q', answer: 'a' })));
    await expect(within(() => ds.get(0), 2000)).rejects.toThrow(/fifo\.jsonl:1: image "img\/fifo\.png" is not a regular file/);
    await expect(within(() => readImageFile(fifo), 2000)).rejects.toThrow(/fifo\.png is not a regular file/);
  });

  test('a zip64 directory claiming 2^32 entries', async () => {
    const z = Buffer.from(zipSync({ 'train_images.npy': npy('|u1', [1, 2, 2], new Uint8Array(4)) }));
    const eocd = findAll(z, [0x50, 0x4b, 5, 6])[0];
    // A zip64 end record and locator in front of the end record, claiming 0xFFFFFFFF entries.
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(0x06064b50, 0);
    rec.writeUInt32LE(0xffffffff, 32);
    rec.writeUInt32LE(z.readUInt32LE(eocd + 16), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeUInt32LE(eocd, 8);
    const f = w('hang/fuzzmnist.npz', concat(z.subarray(0, eocd), rec, loc, z.subarray(eocd)));
    await expect(within(() => openMedMnist(f), 2000)).rejects.toThrow(/fuzzmnist\.npz: zip directory claims more entries/);
  });
});
