// One entry point for datasets from disk (issue 18): openDataset({path, kind?}) guesses the layout,
// opens every split the dataset has into ONE Dataset (info[i].split says which), checks that each
// row's image exists (a stat, no decoding), skips bad rows and reports them by file and line (or
// throws on the first with strict), and hashes the annotation files so a run can tell when its
// data changed.
//
// Kinds and the loaders behind them:
// - jsonl:      a .jsonl file (one JSON record a line, loaders/jsonl.ts), or a folder with data.jsonl
//               (or with exactly one .jsonl file).
// - manifest:   the same records as one JSON document: a .json file holding a list of them (or
//               {"items": [...]}). In the code "manifest" is the record list behind every loader
//               (ManifestDataset, parsed once, images lazy); as a kind it is that list written as
//               JSON, so the JSONL layout has a JSON twin.
// - csv:        the same records as CSV rows with a header (image, question, answer, options, …;
//               loaders/csv.ts openCsvManifest). A .csv file is always this kind: PMC-VQA's csv
//               files are opened through their folder (kind pmc-vqa).
// - medmnist:   a MedMNIST .npz; train/val/test arrays → split train/val/test.
// - vqa-rad:    a folder with the VQA-RAD .json and "VQA_RAD Image Folder" (or images/); split from
//               phrase_type (test_* → test, else train).
// - slake:      a folder with train.json / validate.json / test.json and imgs/ → train/val/test.
// - pmc-vqa:    a folder with train.csv / test.csv (or train_2.csv / test_2.csv) → train/test.
// - omnimedvqa: a folder with QA_information/ (Open-access); no split of its own.
// JSONL, JSON and CSV records may carry their own split ("train", "val", "validate", "test").
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { LoaderError, type OpenOptions, type RowInfo, type Rows } from './loaders/common';
import { csvManifestRows } from './loaders/csv';
import { jsonlRows, jsonManifestRows } from './loaders/jsonl';
import { ManifestDataset } from './loaders/manifest';
import { medMnistRows } from './loaders/medmnist';
import { omniMedVqaRows, pmcVqaFile, pmcVqaRows, slakeRows, vqaRadRows, type SlakeSplit } from './loaders/vqa';
import type { Dataset } from './types';

export const DATASET_KINDS = ['jsonl', 'manifest', 'csv', 'medmnist', 'vqa-rad', 'slake', 'pmc-vqa', 'omnimedvqa'] as const;
export type DatasetKind = (typeof DATASET_KINDS)[number];

export interface DatasetSpec {
  /** A file (data.jsonl, a .csv manifest, a MedMNIST .npz) or a dataset folder (VQA-RAD, SLAKE, PMC-VQA, OmniMedVQA; or a folder holding exactly one data.jsonl). */
  path: string;
  /** Guessed from the path when omitted (guessKind); an ambiguous or unknown path is a LoaderError that lists the kinds. */
  kind?: DatasetKind;
  /** SLAKE question language (default 'en'). */
  language?: string;
  /** NIfTI: default axis and slice for volumes that do not say (per-row fields win). */
  axis?: 0 | 1 | 2;
  /** NIfTI: default slice index along `axis` (default the middle one; negative counts from the end). */
  slice?: number;
  /** A bad row (malformed JSON/CSV, wrong field types, answer not among the options, image file missing / not a regular file / outside the root) throws instead of being skipped. Default false. */
  strict?: boolean;
}

export interface ItemInfo {
  /** The item's stable id. */
  id: string;
  /** The dataset's own split when it has one (SLAKE train/validate/test files → 'train'|'val'|'test'; PMC-VQA train/test csv; MedMNIST train/val/test arrays; VQA-RAD: phrase_type starting with "test" → 'test', else 'train'; JSONL/CSV: an optional `split` field "train"|"val"|"validate"|"test"); undefined when it has none. */
  split?: 'train' | 'val' | 'test';
  /** The row gives a finding box (JSONL `box`). */
  hasBox: boolean;
  /** Imaging modality (lower case; 'unknown' when the dataset does not say). */
  modality: string;
  /** Question type as the dataset gives it. */
  questionType: string;
  /** Open question (no options): graded by normalized exact match. */
  open: boolean;
  /** Closed yes/no question (options are exactly yes/no, or open with answer yes/no). */
  yesNo: boolean;
}

export interface SkippedRow {
  /** "file:line" or "file[i]" (MedMNIST: "file.npz[split/k]"). */
  where: string;
  /** Why, without the `where` prefix. */
  message: string;
}

export interface OpenedDataset {
  /** index i ↔ info[i]; get(i) loads the image lazily. stream({split}) uses an item's own split when it has one, the seeded hash split otherwise. */
  dataset: Dataset;
  /** The kind opened (given or guessed from the path). */
  kind: DatasetKind;
  /** Absolute path of what was opened. */
  path: string;
  /** The annotation files read (absolute), and the sha256 (hex) over their bytes in that order. */
  annotationFiles: string[];
  /** See `annotationFiles`. */
  sha256: string;
  /** Per index, computed WITHOUT loading any image. */
  info: ItemInfo[];
  /** Bad rows skipped (empty with strict). */
  skipped: SkippedRow[];
  /** Per index, the annotation entry the item came from ("file:line" or "file[i]"). */
  where: string[];
}

/** How each kind is recognised, for error messages. */
const KIND_HELP: Record<DatasetKind, string> = {
  jsonl: 'a .jsonl file, or a folder with data.jsonl',
  manifest: 'a .json file with a list of records',
  csv: 'a .csv manifest file',
  medmnist: 'a MedMNIST .npz file',
  'vqa-rad': 'a folder with a .json file and "VQA_RAD Image Folder" or images/',
  slake: 'a folder with train.json or test.json and imgs/',
  'pmc-vqa': 'a folder with train.csv or test.csv (or *_2.csv)',
  omnimedvqa: 'a folder with QA_information/',
};
const kindsList = (): string => `pass a kind: ${DATASET_KINDS.map((k) => `${k} (${KIND_HELP[k]})`).join('; ')}`;

const isDir = (p: string): boolean => {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
};
const isFile = (p: string): boolean => {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
};

/** The JSONL file of a folder: data.jsonl, else its only .jsonl file; undefined when neither. */
function folderJsonl(dir: string, names: string[]): string | undefined {
  if (names.includes('data.jsonl') && isFile(path.join(dir, 'data.jsonl'))) return path.join(dir, 'data.jsonl');
  const jsonl = names.filter((n) => n.toLowerCase().endsWith('.jsonl') && isFile(path.join(dir, n)));
  return jsonl.length === 1 ? path.join(dir, jsonl[0]) : undefined;
}

/** Every kind a folder's content matches. */
function folderKinds(dir: string): DatasetKind[] {
  const names = fs.readdirSync(dir);
  const has = (n: string): boolean => names.includes(n);
  const found: DatasetKind[] = [];
  if (folderJsonl(dir, names)) found.push('jsonl');
  if (names.some((n) => n.toLowerCase().endsWith('.json') && isFile(path.join(dir, n))) && (isDir(path.join(dir, 'VQA_RAD Image Folder')) || isDir(path.join(dir, 'images')))) found.push('vqa-rad');
  if ((has('train.json') || has('test.json')) && isDir(path.join(dir, 'imgs'))) found.push('slake');
  if (['train.csv', 'test.csv', 'train_2.csv', 'test_2.csv'].some((n) => has(n) && isFile(path.join(dir, n)))) found.push('pmc-vqa');
  if (isDir(path.join(dir, 'QA_information'))) found.push('omnimedvqa');
  return found;
}

/**
 * The kind of a dataset path: by extension for a file (.jsonl → jsonl, .json → manifest, .csv →
 * csv, .npz → medmnist), by content for a folder. A folder matching no kind or several, and a file
 * of another extension, is a LoaderError that lists the kinds.
 */
export function guessKind(p: string): DatasetKind {
  const abs = path.resolve(p);
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(abs);
  } catch {
    st = undefined;
  }
  if (!st || !st.isDirectory()) {
    const lower = abs.toLowerCase();
    if (lower.endsWith('.jsonl')) return 'jsonl';
    if (lower.endsWith('.json')) return 'manifest';
    if (lower.endsWith('.csv')) return 'csv';
    if (lower.endsWith('.npz')) return 'medmnist';
    const what = st ? 'a file of no known dataset extension' : 'not found';
    throw new LoaderError(`cannot tell what dataset ${abs} is (${what}); ${kindsList()}`);
  }
  const found = folderKinds(abs);
  if (found.length === 1) return found[0];
  if (found.length === 0) throw new LoaderError(`cannot tell what dataset the folder ${abs} is (it matches no known layout); ${kindsList()}`);
  throw new LoaderError(`the folder ${abs} is ambiguous: it looks like ${found.join(' and ')}; ${kindsList()}`);
}

/** The file a file kind reads when given a folder: `names` tried in order, else the folder's only `ext` file. */
function fileIn(abs: string, kind: DatasetKind, names: string[], ext: string): string {
  if (!isDir(abs)) return abs;
  const entries = fs.readdirSync(abs);
  const named = names.find((n) => entries.includes(n) && isFile(path.join(abs, n)));
  if (named) return path.join(abs, named);
  const only = entries.filter((n) => n.toLowerCase().endsWith(ext) && isFile(path.join(abs, n)));
  if (only.length === 1) return path.join(abs, only[0]);
  throw new LoaderError(`${kind}: the folder ${abs} has ${only.length ? `${only.length} ${ext} files` : `no ${ext} file`}; pass the file itself`);
}

function openRows(kind: DatasetKind, abs: string, spec: DatasetSpec, opts: OpenOptions): Rows<{ id: string }>[] {
  switch (kind) {
    case 'jsonl':
      return [jsonlRows(fileIn(abs, kind, ['data.jsonl'], '.jsonl'), opts)];
    case 'manifest':
      return [jsonManifestRows(fileIn(abs, kind, ['data.json', 'manifest.json'], '.json'), opts)];
    case 'csv':
      return [csvManifestRows(fileIn(abs, kind, ['data.csv', 'manifest.csv'], '.csv'), opts)];
    case 'medmnist':
      return [medMnistRows(abs, { ...opts, splits: 'all' })];
    case 'vqa-rad':
      return [vqaRadRows(abs, opts)];
    case 'slake': {
      if (!isDir(abs)) throw new LoaderError(`dataset root ${abs} is not a directory`);
      const splits = (['train', 'validate', 'test'] as SlakeSplit[]).filter((s) => fs.existsSync(path.join(abs, `${s}.json`)));
      if (splits.length === 0) throw new LoaderError(`SLAKE: none of train.json, validate.json, test.json in ${abs}`);
      return splits.map((split) => slakeRows(abs, { ...opts, split, lang: spec.language }));
    }
    case 'pmc-vqa': {
      if (!isDir(abs)) throw new LoaderError(`dataset root ${abs} is not a directory`);
      const splits = (['train', 'test'] as const).filter((s) => pmcVqaFile(abs, s) !== undefined);
      if (splits.length === 0) throw new LoaderError(`PMC-VQA: none of train.csv, test.csv, train_2.csv, test_2.csv in ${abs}`);
      return splits.map((split) => pmcVqaRows(abs, { ...opts, split }));
    }
    case 'omnimedvqa':
      return [omniMedVqaRows(abs, opts)];
  }
}

/**
 * Opens a dataset from disk: every split it has, as one Dataset, with per-item info computed from
 * the annotations alone. Rows that are bad (see DatasetSpec.strict), whose image is missing, or whose
 * id repeats an earlier row's, are skipped and listed in `skipped` in reading order (strict: the
 * first throws).
 * Whole-file problems (a missing or unreadable annotation file, a JSON document that is not a list,
 * an unterminated CSV quote, a corrupt .npz) always throw a LoaderError naming the file.
 */
export async function openDataset(spec: DatasetSpec): Promise<OpenedDataset> {
  if (!spec || typeof spec.path !== 'string' || spec.path === '') throw new LoaderError(`a dataset needs a path; ${kindsList()}`);
  if (spec.kind !== undefined && !(DATASET_KINDS as readonly string[]).includes(spec.kind)) {
    throw new LoaderError(`unknown dataset kind ${JSON.stringify(spec.kind)}; ${kindsList()}`);
  }
  const abs = path.resolve(spec.path);
  const kind = spec.kind ?? guessKind(abs);
  const skipped: SkippedRow[] = [];
  const annotationFiles: string[] = [];
  const hash = createHash('sha256');
  const opts: OpenOptions = {
    onSkip: spec.strict ? undefined : (where, message) => skipped.push({ where, message }),
    checkImages: true,
    ids: new Map(),
    onFile: (file, bytes) => {
      annotationFiles.push(path.resolve(file));
      hash.update(bytes);
    },
    axis: spec.axis,
    slice: spec.slice,
  };
  const parts = openRows(kind, abs, spec, opts);

  // One record list over all parts (ids are unique across them: opts.ids).
  const records: { id: string; p: number; j: number }[] = [];
  const info: ItemInfo[] = [];
  const where: string[] = [];
  parts.forEach((part, p) =>
    part.records.forEach((r, j) => {
      records.push({ id: r.id, p, j });
      const ri: RowInfo = part.info[j];
      info.push({ id: r.id, ...(ri.split ? { split: ri.split } : {}), hasBox: ri.hasBox, modality: ri.modality, questionType: ri.questionType, open: ri.open, yesNo: ri.yesNo });
      where.push(part.where[j]);
    }),
  );
  const name = parts.length === 1 ? parts[0].name : kind;
  const dataset = new ManifestDataset(
    name,
    records,
    (r) => parts[r.p].load(parts[r.p].records[r.j], r.j),
    (_, i) => info[i].split,
  );
  return { dataset, kind, path: abs, annotationFiles, sha256: hash.digest('hex'), info, skipped, where };
}
