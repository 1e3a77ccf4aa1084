// Item throughput on real-looking files: load + global view + one zoom_in, one item at a time in one
// process, on 512×512 PNGs (8-bit grey and RGB) and 16-bit CT DICOMs (512×512 and 2048×2048).
// medgym's path is the env's: readImageFile (src/data/loaders) → ToolSession → view() →
// executeToolCall(zoom_in); with the view cache off (every view rendered: the honest number) and
// on (a fresh cache per pass: what the cache costs on items seen once). The peer in the same run is
// a plain sharp pipeline: decode the file once, resize to the view (fit contain), extract + resize
// for the zoom; for DICOM (sharp cannot read it) the peer reads with the same readDicom and sharp
// applies the window (linear) in the same two calls. Passes alternate between the three.
// Run: npx tsx bench/run.ts items
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import dcmjs from 'dcmjs';
import sharp from 'sharp';
import { readDicom, readImageFile } from '../src/data/loaders';
import { makeCaches } from '../src/env/cache';
import { cellBox, executeToolCall, ToolSession, type Box } from '../src/tools';
import { printTable } from './harness';

const VIEW = 64;
const CELL = { col: 1, row: 2, name: 'B3' }; // the zoom: one cell of the 4×4 grid

/** Deterministic test pixels: smooth anatomy-like structure plus noise (so PNGs compress as real ones do). */
function pattern(w: number, h: number, channels: 1 | 3, seed: number): Uint8Array {
  let s = seed >>> 0;
  const out = new Uint8Array(w * h * channels);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      const r = Math.hypot(x - w / 2, y - h / 2) / (w / 2);
      const base = r < 0.8 ? 110 + 50 * Math.sin(x / 23) * Math.cos(y / 31) : 10;
      for (let c = 0; c < channels; c++) out[(y * w + x) * channels + c] = Math.max(0, Math.min(255, base + c * 25 + ((s >>> 24) % 21) - 10));
    }
  }
  return out;
}

async function writePng(file: string, w: number, h: number, channels: 1 | 3, seed: number): Promise<void> {
  const p = sharp(pattern(w, h, channels, seed), { raw: { width: w, height: h, channels } });
  fs.writeFileSync(file, await (channels === 1 ? p.toColourspace('b-w') : p).png().toBuffer());
}

/** A CT slice as scanners write it: signed 16-bit, HU = stored − 1024, soft-tissue window 40/400. */
function writeDicom(file: string, n: number, seed: number): void {
  const px = pattern(n, n, 1, seed);
  const hu = new Int16Array(n * n);
  for (let i = 0; i < hu.length; i++) hu[i] = px[i] * 8 - 1000 + 1024; // −1000 … 1040 HU, stored +1024
  const { DicomMetaDictionary, DicomDict } = dcmjs.data;
  const nat = {
    SOPClassUID: '1.2.840.10008.5.1.4.1.1.2', SOPInstanceUID: `1.2.3.${seed}`, Modality: 'CT', Rows: n, Columns: n,
    BitsAllocated: 16, BitsStored: 16, HighBit: 15, PixelRepresentation: 1, SamplesPerPixel: 1, PhotometricInterpretation: 'MONOCHROME2',
    RescaleSlope: 1, RescaleIntercept: -1024, WindowCenter: 40, WindowWidth: 400, PixelData: [hu.buffer], _vrMap: { PixelData: 'OW' },
  };
  const dict = new DicomDict(DicomMetaDictionary.denaturalizeDataset({ FileMetaInformationVersion: new Uint8Array([0, 1]).buffer, MediaStorageSOPClassUID: nat.SOPClassUID, MediaStorageSOPInstanceUID: nat.SOPInstanceUID, TransferSyntaxUID: '1.2.840.10008.1.2.1', ImplementationClassUID: '1.2.3.4.5' }));
  dict.dict = DicomMetaDictionary.denaturalizeDataset(nat);
  fs.writeFileSync(file, new Uint8Array(dict.write()));
}

interface Stages {
  load: number[];
  view: number[];
  zoom: number[];
}
const newStages = (): Stages => ({ load: [], view: [], zoom: [] });
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

/** medgym: what MedGymEnv.reset + one zoom_in step do with an item's image. */
async function medgymItem(file: string, st: Stages, cache: ReturnType<typeof makeCaches>['views'] | undefined): Promise<void> {
  let t = performance.now();
  const img = await readImageFile(file);
  st.load.push(performance.now() - t);
  t = performance.now();
  const s = new ToolSession(img, { viewSize: VIEW, viewChannels: 3, kernel: 'lanczos3', cache, cacheKey: cache ? file : undefined });
  await s.view();
  st.view.push(performance.now() - t);
  t = performance.now();
  const r = await executeToolCall(s, { name: 'zoom_in', arguments: { cell: CELL.name } });
  if (!r.ok) throw new Error(r.error);
  st.zoom.push(performance.now() - t);
}

type Pipe = ReturnType<typeof sharp>;
const contain = { fit: 'contain' as const, background: { r: 0, g: 0, b: 0 }, kernel: 'lanczos3' as const };

/** The peer's two sharp pipelines on raw pixels: resize to the view; extract + resize. `window` maps 16-bit input to 8 bits in sharp. */
async function sharpViews(data: Uint8Array | Uint16Array | Buffer, width: number, height: number, channels: 1 | 3, box: Box, st: Stages, window?: (p: Pipe) => Pipe): Promise<void> {
  const win = window ?? ((p: Pipe) => p);
  let t = performance.now();
  await win(sharp(data, { raw: { width, height, channels } })).resize(VIEW, VIEW, contain).toColourspace('srgb').raw().toBuffer();
  st.view.push(performance.now() - t);
  t = performance.now();
  await win(sharp(data, { raw: { width, height, channels } }).extract({ left: box[0], top: box[1], width: box[2] - box[0], height: box[3] - box[1] }))
    .resize(VIEW, VIEW, contain)
    .toColourspace('srgb')
    .raw()
    .toBuffer();
  st.zoom.push(performance.now() - t);
}

async function peerPng(file: string, st: Stages): Promise<void> {
  const t = performance.now();
  const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
  st.load.push(performance.now() - t);
  await sharpViews(data, info.width, info.height, info.channels as 1 | 3, cellBox(CELL.col, CELL.row, 1, info.width, info.height), st);
}

async function peerDicom(file: string, st: Stages): Promise<void> {
  const t = performance.now();
  const { image } = readDicom(file);
  st.load.push(performance.now() - t);
  // The DICOM window in sharp: linear onto 0..65535, then sharp's 16 → 8-bit conversion (within 1 grey level of to8Bit).
  const w = image.defaultWindow!;
  const a = 65535 / w.width;
  const b = -(w.center - w.width / 2) * a;
  const box = cellBox(CELL.col, CELL.row, 1, image.width, image.height);
  await sharpViews(image.data, image.width, image.height, 1, box, st, (p) => p.linear(a, b));
}

type Method = 'peer' | 'off' | 'on';

/** One pass over the files: items per wall second, and CPU ms per item (all threads; robust to a busy machine). */
async function pass(files: string[], method: Method, dicom: boolean, st: Stages): Promise<{ rate: number; cpuMs: number }> {
  const cache = method === 'on' ? makeCaches(64, 1024).views : undefined;
  const t = performance.now();
  const c = process.cpuUsage();
  for (const f of files) {
    if (method === 'peer') await (dicom ? peerDicom(f, st) : peerPng(f, st));
    else await medgymItem(f, st, cache);
  }
  const cpu = process.cpuUsage(c);
  return { rate: files.length / ((performance.now() - t) / 1000), cpuMs: (cpu.user + cpu.system) / 1000 / files.length };
}

export async function run(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-items-'));
  try {
    const sets: { name: string; files: string[]; dicom: boolean; rounds: number }[] = [];
    const make = async (name: string, n: number, dicom: boolean, rounds: number, write: (f: string, i: number) => Promise<void> | void, ext: string): Promise<void> => {
      const files: string[] = [];
      for (let i = 0; i < n; i++) {
        const f = path.join(dir, `${name.replace(/\W+/g, '_')}_${i}.${ext}`);
        await write(f, i);
        files.push(f);
      }
      sets.push({ name, files, dicom, rounds });
    };
    await make('PNG 512×512 8-bit grey', 48, false, 7, (f, i) => writePng(f, 512, 512, 1, i + 1), 'png');
    await make('PNG 512×512 RGB', 48, false, 7, (f, i) => writePng(f, 512, 512, 3, i + 101), 'png');
    await make('DICOM 512×512 16-bit CT', 48, true, 7, (f, i) => writeDicom(f, 512, i + 201), 'dcm');
    await make('DICOM 2048×2048 16-bit', 8, true, 5, (f, i) => writeDicom(f, 2048, i + 301), 'dcm');

    const rows: (string | number)[][] = [];
    const stageRows: (string | number)[][] = [];
    for (const set of sets) {
      const rate: Record<Method, number[]> = { peer: [], off: [], on: [] };
      const cpu: Record<Method, number[]> = { peer: [], off: [], on: [] };
      const stages: Record<Method, Stages> = { peer: newStages(), off: newStages(), on: newStages() };
      const order: Method[] = ['peer', 'off', 'on'];
      for (const m of order) await pass(set.files.slice(0, 4), m, set.dicom, newStages()); // warm up
      for (let r = 0; r < set.rounds; r++) {
        // Alternate the order between rounds so drift on a shared machine hits all three alike.
        for (const m of r % 2 ? [...order].reverse() : order) {
          const res = await pass(set.files, m, set.dicom, stages[m]);
          rate[m].push(res.rate);
          cpu[m].push(res.cpuMs);
        }
      }
      const [p, off, on] = [median(rate.peer), median(rate.off), median(rate.on)];
      const [cp, coff, con] = [median(cpu.peer), median(cpu.off), median(cpu.on)];
      rows.push([set.name, p, off, on, p / off, p / on, cp, coff, con, coff / cp]);
      for (const m of order) {
        const s = stages[m];
        stageRows.push([set.name, m === 'peer' ? 'plain sharp' : m === 'off' ? 'medgym, cache off' : 'medgym, cache on', median(s.load), median(s.view), median(s.zoom)]);
      }
    }
    printTable(
      `Items: load + global view + one zoom_in (${VIEW}x${VIEW} RGB views, lanczos3), one at a time, one process; medians of passes (items/s)`,
      ['files', 'plain sharp', 'medgym, view cache off', 'medgym, view cache on (cold)', 'medgym time / sharp (off)', '(on)', 'CPU ms/item sharp', 'medgym off', 'medgym on', 'CPU medgym off / sharp'],
      rows,
    );
    printTable('Items: where the time goes (median ms per item)', ['files', 'path', 'load (decode / parse)', 'global view (medgym: + JS window)', 'zoom_in'], stageRows);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
