// Public medical VQA layouts → Dataset. Each reads its annotation file(s) once and loads images
// lazily from inside the root:
// - VQA-RAD: root/*.json (list of {image_name, question, answer, answer_type, question_type, image_organ}),
//   images in root/"VQA_RAD Image Folder" (or root/images).
// - SLAKE: root/{train,validate,test}.json ({img_name, question, answer, answer_type, modality,
//   content_type, q_lang}), images in root/imgs; English only unless lang is given.
// - PMC-VQA: root/{train,test}.csv (Figure_path, Question, Answer, Choice A–D, Answer_label),
//   images in root/images (or root/figures).
// - OmniMedVQA: root/QA_information/{Open-access,Restricted-access}/*.json ({question_id, question,
//   gt_answer, option_A–D, image_path, modality_type, question_type}), image paths relative to root.
// Closed yes/no questions become options ["yes", "no"]; other free-text answers stay open.
// Each `*Rows` function takes OpenOptions (bad entries skipped and reported, images stat-checked at
// open time; see common.ts) and gives the rows with their own split where the layout has one; the
// `open*` functions are the original API over them (first bad entry throws).
import * as fs from 'fs';
import * as path from 'path';
import type { Split, VqaItem } from '../types';
import { answerIndex, checkRow, guardRow, LoaderError, loadRow, readJson, readText, requireDir, resolveInside, rowInfo, type OpenOptions, type Rows } from './common';
import { readImageFile } from './image_file';
import { ManifestDataset } from './manifest';
import { parseCsvTable } from './csv';

export interface VqaRecord {
  /** Stable id, e.g. 'pmc-vqa/train/12'. */
  id: string;
  /** Image path relative to the dataset root. */
  image: string;
  /** The question text. */
  question: string;
  /** Option texts for multiple choice; empty for open questions. */
  options: string[];
  /** Index into options (multiple choice) or the reference text (open questions). */
  answer: number | string;
  /** Imaging modality (lower case; 'unknown' when the dataset does not say). */
  modality: string;
  /** Question type as the dataset gives it. */
  questionType: string;
  /** The layout's own split of this entry, when it has one. */
  split?: Split;
}

/**
 * A field as text: strings, numbers and booleans (some releases store answers such as 2 or true as
 * JSON values); missing is ''. A list or object is a malformed entry, not text to String() into
 * "[object Object]" or "a,b".
 */
const text = (o: Record<string, unknown>, key: string, where: string): string => {
  const v = o[key];
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v.trim();
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  throw new LoaderError(`${where}: ${key} must be text but is ${Array.isArray(v) ? 'a list' : `of type ${typeof v}`}`);
};

function closedOrOpen(answer: string): { options: string[]; answer: number | string } {
  const a = answer.toLowerCase();
  if (a === 'yes' || a === 'no') return { options: ['yes', 'no'], answer: a === 'yes' ? 0 : 1 };
  return { options: [], answer };
}

/** Rows over parsed entries (`where` names each: "file[3]", "file.csv:7"), images under root/imageDir. */
function vqaRows(name: string, root: string, imageDir: string, kept: { rec: VqaRecord; where: string }[], opts: OpenOptions): Rows<VqaRecord> {
  const where = kept.map((p) => p.where);
  return {
    name,
    records: kept.map((p) => p.rec),
    where,
    info: kept.map(({ rec: r }) => rowInfo(r)),
    load: (r, i) =>
      loadRow(where[i], async (): Promise<VqaItem> => ({
        id: r.id,
        image: await readImageFile(resolveInside(root, path.join(imageDir, r.image), 'image'), { axis: opts.axis, slice: opts.slice }),
        question: r.question,
        options: r.options,
        answer: r.answer,
        modality: r.modality,
        questionType: r.questionType,
      })),
  };
}

const toDataset = (rows: Rows<VqaRecord>): ManifestDataset<VqaRecord> => new ManifestDataset(rows.name, rows.records, rows.load);

/** The entries of a JSON list, each parsed by `parse` (a non-object entry is a bad entry). */
function entries(file: string, root: string, imageDir: string, opts: OpenOptions, parse: (o: Record<string, unknown>, i: number, at: string) => VqaRecord | undefined): { rec: VqaRecord; where: string }[] {
  const v = readJson(file, opts.onFile);
  if (!Array.isArray(v)) throw new LoaderError(`${file}: expected a JSON list of questions`);
  const out: { rec: VqaRecord; where: string }[] = [];
  v.forEach((x, i) => {
    const at = `${file}[${i}]`;
    const rec = guardRow(opts, at, () => {
      if (x === null || typeof x !== 'object' || Array.isArray(x)) throw new LoaderError(`${at}: entry ${i} is not an object`);
      const r = parse(x as Record<string, unknown>, i, at);
      if (r) checkRow(opts, at, root, r.id, path.join(imageDir, r.image));
      return r;
    });
    if (rec) out.push({ rec, where: at });
  });
  return out;
}

const need = (o: Record<string, unknown>, key: string, where: string): string => {
  const v = text(o, key, where);
  if (!v) throw new LoaderError(`${where}: missing ${key}`);
  return v;
};

/** The VQA-RAD annotation file of a folder: the .json named like VQA_RAD, else the first by name. */
function vqaRadFile(root: string): string {
  const json = fs
    .readdirSync(root)
    .filter((f) => f.toLowerCase().endsWith('.json'))
    .sort();
  if (json.length === 0) throw new LoaderError(`VQA-RAD: no .json annotation file in ${root}`);
  return path.join(root, json.find((f) => /vqa.?rad/i.test(f)) ?? json[0]);
}

/** VQA-RAD rows; split from phrase_type ("test_freeform", "test_para" → test; others → train). */
export function vqaRadRows(root: string, opts: OpenOptions = {}): Rows<VqaRecord> {
  requireDir(root);
  const file = vqaRadFile(root);
  const imageDir = ['VQA_RAD Image Folder', 'images'].find((d) => fs.existsSync(path.join(root, d))) ?? '.';
  const parsed = entries(file, root, imageDir, opts, (o, i, at) => {
    const ans = closedOrOpen(need(o, 'answer', at));
    const organ = text(o, 'image_organ', at).toLowerCase();
    return {
      id: `vqa-rad/${text(o, 'qid', at) || i}`,
      image: need(o, 'image_name', at),
      question: need(o, 'question', at),
      ...ans,
      modality: organ === 'chest' ? 'xray' : organ === 'head' ? 'ct/mri' : organ === 'abd' ? 'ct' : 'unknown',
      questionType: `${text(o, 'answer_type', at).toLowerCase() || 'open'}:${text(o, 'question_type', at).toLowerCase()}`,
      split: text(o, 'phrase_type', at).toLowerCase().startsWith('test') ? 'test' : 'train',
    };
  });
  return vqaRows('vqa-rad', root, imageDir, parsed, opts);
}

export function openVqaRad(root: string, opts: OpenOptions = {}): ManifestDataset<VqaRecord> {
  return toDataset(vqaRadRows(root, opts));
}

export type SlakeSplit = 'train' | 'validate' | 'test';
const SLAKE_SPLIT: Record<SlakeSplit, Split> = { train: 'train', validate: 'val', test: 'test' };

/** SLAKE rows of one split file (train.json, validate.json or test.json), one language. */
export function slakeRows(root: string, opts: OpenOptions & { split?: SlakeSplit; lang?: string } = {}): Rows<VqaRecord> {
  requireDir(root);
  const split = opts.split ?? 'train';
  const file = path.join(root, `${split}.json`);
  if (!fs.existsSync(file)) throw new LoaderError(`SLAKE: ${file} not found`);
  const lang = opts.lang ?? 'en';
  // Entries keep their index in the file (not among the kept language) so errors point at them.
  const parsed = entries(file, root, 'imgs', opts, (o, i, at) => {
    if ((text(o, 'q_lang', at) || 'en') !== lang) return undefined;
    return {
      id: `slake/${text(o, 'qid', at) || `${split}-${i}`}`,
      image: need(o, 'img_name', at),
      question: need(o, 'question', at),
      ...closedOrOpen(need(o, 'answer', at)),
      modality: text(o, 'modality', at).toLowerCase().replace('x-ray', 'xray') || 'unknown',
      questionType: `${text(o, 'answer_type', at).toLowerCase() || 'open'}:${text(o, 'content_type', at).toLowerCase()}`,
      split: SLAKE_SPLIT[split],
    };
  });
  return vqaRows(`slake-${split}`, root, 'imgs', parsed, opts);
}

export function openSlake(root: string, opts: OpenOptions & { split?: SlakeSplit; lang?: string } = {}): ManifestDataset<VqaRecord> {
  return toDataset(slakeRows(root, opts));
}

/** The PMC-VQA csv of a split: `split`.csv, else `split`_2.csv; undefined when neither is there. */
export function pmcVqaFile(root: string, split: 'train' | 'test'): string | undefined {
  const name = [`${split}.csv`, `${split}_2.csv`].find((c) => fs.existsSync(path.join(root, c)));
  return name === undefined ? undefined : path.join(root, name);
}

/** PMC-VQA rows of one split csv. */
export function pmcVqaRows(root: string, opts: OpenOptions & { split?: 'train' | 'test' } = {}): Rows<VqaRecord> {
  requireDir(root);
  const split = opts.split ?? 'train';
  const file = pmcVqaFile(root, split);
  if (!file) throw new LoaderError(`PMC-VQA: none of ${split}.csv, ${split}_2.csv in ${root}`);
  const { header, rows } = parseCsvTable(readText(file, opts.onFile), file);
  const imageDir = ['images', 'figures'].find((d) => fs.existsSync(path.join(root, d))) ?? '.';
  const parsed: { rec: VqaRecord; where: string }[] = [];
  rows.forEach((r, i) => {
    const at = `${file}:${r.line}`;
    const rec = guardRow(opts, at, (): VqaRecord => {
      // Extra cells are tolerated by the original reader; with onSkip (openDataset) a row wider
      // than the header is malformed (a stray quote or comma shifted its columns).
      if (opts.onSkip && r.cells.length > header.length) throw new LoaderError(`${at}: malformed row: ${r.cells.length} fields but the header has ${header.length}`);
      const o: Record<string, string> = Object.fromEntries(header.map((h, k) => [h, r.cells[k] ?? '']));
      // Choices look like "A:MRI" or " A: MRI"; the letter prefix is dropped.
      const options = ['Choice A', 'Choice B', 'Choice C', 'Choice D'].map((k) => text(o, k, at).replace(/^[A-D]\s*:\s*/, '')).filter(Boolean);
      const label = text(o, 'Answer_label', at);
      const full = text(o, 'Answer', at);
      if (!label && !full) throw new LoaderError(`${at}: missing Answer_label and Answer`);
      const answer = answerIndex(label, options) ?? answerIndex(full.replace(/^[A-D]\s*:\s*/, ''), options);
      if (answer === undefined) throw new LoaderError(`${at}: answer ${JSON.stringify(label || full)} is none of the choices`);
      const rec: VqaRecord = { id: `pmc-vqa/${split}/${i}`, image: need(o, 'Figure_path', at), question: need(o, 'Question', at), options, answer, modality: 'unknown', questionType: 'multiple-choice', split };
      checkRow(opts, at, root, rec.id, path.join(imageDir, rec.image));
      return rec;
    });
    if (rec) parsed.push({ rec, where: at });
  });
  return vqaRows(`pmc-vqa-${split}`, root, imageDir, parsed, opts);
}

export function openPmcVqa(root: string, opts: OpenOptions & { split?: 'train' | 'test' } = {}): ManifestDataset<VqaRecord> {
  return toDataset(pmcVqaRows(root, opts));
}

export type OmniAccess = 'Open-access' | 'Restricted-access';

/** OmniMedVQA rows of QA_information/<access>/*.json (Open-access by default); no split of its own. */
export function omniMedVqaRows(root: string, options: OpenOptions & { access?: OmniAccess[] } = {}): Rows<VqaRecord> {
  requireDir(root);
  let skipped = 0;
  const opts: typeof options = options.onSkip ? { ...options, onSkip: (w, m) => (skipped++, options.onSkip!(w, m)) } : options;
  const parsed: { rec: VqaRecord; where: string }[] = [];
  const read: string[] = [];
  for (const access of opts.access ?? ['Open-access']) {
    const dir = path.join(root, 'QA_information', access);
    if (!fs.existsSync(dir)) continue;
    for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.json')).sort()) {
      const file = path.join(dir, f);
      read.push(file);
      parsed.push(
        ...entries(file, root, '.', opts, (o, i, at) => {
          const options = ['option_A', 'option_B', 'option_C', 'option_D'].map((k) => text(o, k, at)).filter(Boolean);
          const gt = need(o, 'gt_answer', at);
          const answer = answerIndex(gt, options);
          if (answer === undefined) throw new LoaderError(`${at}: gt_answer ${JSON.stringify(gt)} is none of the options`);
          return {
            id: `omnimedvqa/${text(o, 'question_id', at) || `${f}-${i}`}`,
            image: need(o, 'image_path', at),
            question: need(o, 'question', at),
            options,
            answer,
            modality: text(o, 'modality_type', at).toLowerCase() || 'unknown',
            questionType: text(o, 'question_type', at).toLowerCase() || 'unknown',
          };
        }),
      );
    }
  }
  // A folder whose every entry was skipped as bad gives no rows (the skips say why); one without
  // any entry at all is an error.
  if (parsed.length === 0 && skipped === 0) {
    throw new LoaderError(read.length ? `OmniMedVQA: no questions in ${read.join(', ')}` : `OmniMedVQA: no QA_information/*/*.json under ${root}`);
  }
  return vqaRows('omnimedvqa', root, '.', parsed, opts);
}

export function openOmniMedVqa(root: string, opts: OpenOptions & { access?: OmniAccess[] } = {}): ManifestDataset<VqaRecord> {
  return toDataset(omniMedVqaRows(root, opts));
}
