// `medgym data check <path>`: opens a dataset from disk (openDataset), then loads every item's image
// (the check: decoding is otherwise lazy), and prints what is there (counts by split, modality and
// question type, answer kinds, boxes, image sizes, bit depths, channels) and every bad row with its
// file and line: those skipped at open time and those whose image does not decode.
import * as os from 'os';
import { Presets, SingleBar } from 'cli-progress';
import { reasonOf } from '../data/loaders/common';
import { DATASET_KINDS, openDataset, type DatasetKind, type DatasetSpec, type ItemInfo, type OpenedDataset } from '../data/open';
import type { RawImage } from '../tools/image';

export interface DataCheckFlags {
  kind?: string;
  strict?: boolean;
  json?: boolean;
  language?: string;
  axis?: string;
  slice?: string;
}

export const DATA_KINDS_HELP = `dataset kind (default: guessed from the path): ${DATASET_KINDS.join(' | ')}`;

export interface BadRow {
  where: string;
  message: string;
  /** 'open': skipped when the annotations were read; 'decode': the image did not load. */
  stage: 'open' | 'decode';
}

export interface Spread {
  min: number;
  median: number;
  max: number;
}

export interface DataCheckReport {
  /** False when no usable item remains, or (strict) on any bad row. */
  ok: boolean;
  path: string;
  kind: DatasetKind;
  annotationFiles: string[];
  sha256: string;
  /** Items the annotations gave (bad rows skipped at open time not counted). */
  opened: number;
  /** Items whose image also decoded: everything below counts these. */
  usable: number;
  bySplit: Record<string, number>;
  byModality: Record<string, number>;
  byQuestionType: Record<string, number>;
  answers: { open: number; multipleChoice: number; yesNo: number };
  withBox: number;
  images: { width: Spread; height: Spread; bitDepth: Record<string, number>; channels: Record<string, number> } | null;
  bad: BadRow[];
}

const count = (xs: string[]): Record<string, number> => {
  const m = new Map<string, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  // Most frequent first, then by name: stable output for the same data.
  return Object.fromEntries([...m].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)));
};

const spread = (xs: number[]): Spread => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], median: s[(s.length - 1) >> 1], max: s[s.length - 1] };
};

/** Orders "file:line", "file[i]" and "file[split/k]" by file (in reading order), then position. */
function byPosition(files: string[]): (a: BadRow, b: BadRow) => number {
  const SPLITS = ['train', 'val', 'test'];
  const key = (w: string): [number, string, number, number] => {
    const m = /^(.*?)(?::(\d+)|\[(?:(train|val|test)\/)?(\d+)\])$/.exec(w);
    if (!m) return [files.length, w, 0, 0];
    const f = files.indexOf(m[1]);
    return [f < 0 ? files.length : f, m[1], m[2] !== undefined ? 0 : m[3] ? SPLITS.indexOf(m[3]) : 0, Number(m[2] ?? m[4])];
  };
  return (a, b) => {
    const x = key(a.where);
    const y = key(b.where);
    return x[0] - y[0] || (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0) || x[2] - y[2] || x[3] - y[3];
  };
}

/**
 * Decodes every item of an opened dataset (`concurrency` at a time) and summarises the usable ones.
 * `onItem` is called after each item (for progress).
 */
export async function checkOpened(opened: OpenedDataset, opts: { strict?: boolean; concurrency?: number; onItem?: (done: number, bad: number) => void } = {}): Promise<DataCheckReport> {
  const n = opened.info.length;
  const images: (Pick<RawImage, 'width' | 'height' | 'bitDepth' | 'channels'> | undefined)[] = new Array(n);
  const bad: BadRow[] = opened.skipped.map((s) => ({ where: s.where, message: s.message, stage: 'open' as const }));
  const decodeBad: { i: number; row: BadRow }[] = [];
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      try {
        const img = (await opened.dataset.get(i)).image;
        images[i] = { width: img.width, height: img.height, bitDepth: img.bitDepth, channels: img.channels };
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        decodeBad.push({ i, row: { where: opened.where[i], message: reasonOf(message, opened.where[i]), stage: 'decode' } });
      }
      opts.onItem?.(++done, bad.length + decodeBad.length);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? Math.min(8, os.cpus().length), n)) }, worker));
  bad.push(...decodeBad.sort((a, b) => a.i - b.i).map((d) => d.row));
  bad.sort(byPosition(opened.annotationFiles));
  const usable: { info: ItemInfo; img: NonNullable<(typeof images)[number]> }[] = [];
  opened.info.forEach((info, i) => {
    const img = images[i];
    if (img) usable.push({ info, img });
  });
  const u = usable.map((x) => x.info);
  return {
    ok: usable.length > 0 && !(opts.strict && bad.length > 0),
    path: opened.path,
    kind: opened.kind,
    annotationFiles: opened.annotationFiles,
    sha256: opened.sha256,
    opened: n,
    usable: usable.length,
    bySplit: count(u.map((x) => x.split ?? 'none')),
    byModality: count(u.map((x) => x.modality)),
    byQuestionType: count(u.map((x) => x.questionType)),
    answers: {
      open: u.filter((x) => x.open && !x.yesNo).length,
      multipleChoice: u.filter((x) => !x.open && !x.yesNo).length,
      yesNo: u.filter((x) => x.yesNo).length,
    },
    withBox: u.filter((x) => x.hasBox).length,
    images: usable.length
      ? {
          width: spread(usable.map((x) => x.img.width)),
          height: spread(usable.map((x) => x.img.height)),
          bitDepth: count(usable.map((x) => String(x.img.bitDepth))),
          channels: count(usable.map((x) => String(x.img.channels))),
        }
      : null,
    bad,
  };
}

const list = (m: Record<string, number>, label: (k: string) => string = (k) => k): string =>
  Object.entries(m)
    .map(([k, v]) => `${label(k)} ${v}`)
    .join(', ') || '-';

/** The report as text lines. */
export function formatCheck(r: DataCheckReport): string[] {
  const out: string[] = [];
  out.push(`dataset: ${r.path} (${r.kind})`);
  out.push(`annotations: ${r.annotationFiles.length} file${r.annotationFiles.length === 1 ? '' : 's'}, sha256 ${r.sha256}`);
  for (const f of r.annotationFiles) out.push(`  ${f}`);
  const atOpen = r.bad.filter((b) => b.stage === 'open').length;
  const atDecode = r.bad.length - atOpen;
  out.push(`items: ${r.usable} usable of ${r.opened} opened; ${r.bad.length} bad row${r.bad.length === 1 ? '' : 's'} (${atOpen} skipped when opening, ${atDecode} whose image does not decode)`);
  out.push(`splits: ${list(r.bySplit, (k) => (k === 'none' ? '(no split of its own)' : k))}`);
  out.push(`modalities: ${list(r.byModality)}`);
  out.push(`question types: ${list(r.byQuestionType)}`);
  out.push(`answers: ${r.answers.multipleChoice} multiple choice, ${r.answers.yesNo} yes/no, ${r.answers.open} open`);
  out.push(`with a finding box: ${r.withBox}`);
  if (r.images) {
    const s = (x: Spread): string => `${x.min} / ${x.median} / ${x.max}`;
    out.push(`image width (min / median / max): ${s(r.images.width)}; height: ${s(r.images.height)}`);
    out.push(`bit depths: ${list(r.images.bitDepth, (k) => `${k}-bit`)}`);
    out.push(`channels: ${list(r.images.channels, (k) => (k === '1' ? 'grey' : k === '3' ? 'RGB' : k))}`);
  }
  if (r.bad.length) {
    out.push(`bad rows (${r.bad.length}):`);
    for (const b of r.bad) out.push(`  ${b.where}: ${b.message}`);
  }
  out.push(r.ok ? 'ok' : r.usable === 0 ? 'FAILED: no usable item' : 'FAILED: bad rows (--strict)');
  return out;
}

const int = (v: string | undefined, name: string): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new RangeError(`Expected an integer for --${name} but received ${JSON.stringify(v)}`);
  return n;
};

/** `medgym data check <path>`: 0 when usable items remain (and, with --strict, no row is bad); 1 otherwise. */
export async function dataCheckCommand(p: string, f: DataCheckFlags): Promise<number> {
  const axis = int(f.axis, 'axis');
  if (axis !== undefined && axis !== 0 && axis !== 1 && axis !== 2) throw new RangeError(`Expected --axis 0, 1 or 2 but received ${axis}`);
  const spec: DatasetSpec = { path: p, kind: f.kind as DatasetKind | undefined, strict: Boolean(f.strict), language: f.language, axis, slice: int(f.slice, 'slice') };
  let opened: OpenedDataset;
  try {
    opened = await openDataset(spec);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (f.json) console.log(JSON.stringify({ ok: false, path: p, error: message }, null, 2));
    else console.error(`medgym data check: ${message}`);
    return 1;
  }
  const bar = process.stderr.isTTY && opened.info.length > 0 ? new SingleBar({ format: 'check {bar} {value}/{total} | {bad} bad | ETA {eta_formatted}', hideCursor: true, etaBuffer: 50 }, Presets.shades_classic) : undefined;
  bar?.start(opened.info.length, 0, { bad: opened.skipped.length });
  let report: DataCheckReport;
  try {
    report = await checkOpened(opened, { strict: f.strict, onItem: (done, bad) => bar?.update(done, { bad }) });
  } finally {
    bar?.stop();
  }
  if (f.json) console.log(JSON.stringify(report, null, 2));
  else for (const line of formatCheck(report)) console.log(line);
  return report.ok ? 0 : 1;
}
