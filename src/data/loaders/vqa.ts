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
import * as fs from 'fs';
import * as path from 'path';
import type { VqaItem } from '../types';
import { answerIndex, LoaderError, loadRow, readJson, readText, requireDir, resolveInside } from './common';
import { readImageFile } from './image_file';
import { ManifestDataset } from './manifest';
import { parseCsvRows } from './csv';

export interface VqaRecord {
  id: string;
  image: string;
  question: string;
  options: string[];
  answer: number | string;
  modality: string;
  questionType: string;
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

/** `where[i]` names the annotation entry of records[i] ("file[3]", "file.csv:7") in load errors. */
function dataset(name: string, root: string, imageDir: string, records: VqaRecord[], where: string[]): ManifestDataset<VqaRecord> {
  return new ManifestDataset(name, records, (r, i) =>
    loadRow(where[i], async (): Promise<VqaItem> => ({
      id: r.id,
      image: await readImageFile(resolveInside(root, path.join(imageDir, r.image), 'image')),
      question: r.question,
      options: r.options,
      answer: r.answer,
      modality: r.modality,
      questionType: r.questionType,
    })),
  );
}

const asList = (v: unknown, file: string): Record<string, unknown>[] => {
  if (!Array.isArray(v)) throw new LoaderError(`${file}: expected a JSON list of questions`);
  return v.map((x, i) => {
    if (x === null || typeof x !== 'object') throw new LoaderError(`${file}: entry ${i} is not an object`);
    return x as Record<string, unknown>;
  });
};

const need = (o: Record<string, unknown>, key: string, where: string): string => {
  const v = text(o, key, where);
  if (!v) throw new LoaderError(`${where}: missing ${key}`);
  return v;
};

export function openVqaRad(root: string): ManifestDataset<VqaRecord> {
  requireDir(root);
  const json = fs.readdirSync(root).filter((f) => f.toLowerCase().endsWith('.json'));
  if (json.length === 0) throw new LoaderError(`VQA-RAD: no .json annotation file in ${root}`);
  const file = path.join(root, json[0]);
  const imageDir = ['VQA_RAD Image Folder', 'images'].find((d) => fs.existsSync(path.join(root, d))) ?? '.';
  const where: string[] = [];
  const records = asList(readJson(file), file).map((o, i) => {
    const at = `${file}[${i}]`;
    where.push(at);
    const ans = closedOrOpen(need(o, 'answer', at));
    const organ = text(o, 'image_organ', at).toLowerCase();
    return {
      id: `vqa-rad/${text(o, 'qid', at) || i}`,
      image: need(o, 'image_name', at),
      question: need(o, 'question', at),
      ...ans,
      modality: organ === 'chest' ? 'xray' : organ === 'head' ? 'ct/mri' : organ === 'abd' ? 'ct' : 'unknown',
      questionType: `${text(o, 'answer_type', at).toLowerCase() || 'open'}:${text(o, 'question_type', at).toLowerCase()}`,
    };
  });
  return dataset('vqa-rad', root, imageDir, records, where);
}

export function openSlake(root: string, opts: { split?: 'train' | 'validate' | 'test'; lang?: string } = {}): ManifestDataset<VqaRecord> {
  requireDir(root);
  const split = opts.split ?? 'train';
  const file = path.join(root, `${split}.json`);
  if (!fs.existsSync(file)) throw new LoaderError(`SLAKE: ${file} not found`);
  const lang = opts.lang ?? 'en';
  const where: string[] = [];
  const records: VqaRecord[] = [];
  // Entries keep their index in the file (not among the kept language) so errors point at them.
  asList(readJson(file), file).forEach((o, i) => {
    const at = `${file}[${i}]`;
    if ((text(o, 'q_lang', at) || 'en') !== lang) return;
    where.push(at);
    records.push({
      id: `slake/${text(o, 'qid', at) || `${split}-${i}`}`,
      image: need(o, 'img_name', at),
      question: need(o, 'question', at),
      ...closedOrOpen(need(o, 'answer', at)),
      modality: text(o, 'modality', at).toLowerCase().replace('x-ray', 'xray') || 'unknown',
      questionType: `${text(o, 'answer_type', at).toLowerCase() || 'open'}:${text(o, 'content_type', at).toLowerCase()}`,
    });
  });
  return dataset(`slake-${split}`, root, 'imgs', records, where);
}

export function openPmcVqa(root: string, opts: { split?: 'train' | 'test' } = {}): ManifestDataset<VqaRecord> {
  requireDir(root);
  const split = opts.split ?? 'train';
  const candidates = [`${split}.csv`, `${split}_2.csv`];
  const name = candidates.find((c) => fs.existsSync(path.join(root, c)));
  if (!name) throw new LoaderError(`PMC-VQA: none of ${candidates.join(', ')} in ${root}`);
  const file = path.join(root, name);
  const rows = parseCsvRows(readText(file), file);
  const imageDir = ['images', 'figures'].find((d) => fs.existsSync(path.join(root, d))) ?? '.';
  const where = rows.map((r) => `${file}:${r.line}`);
  const records = rows.map(({ row: o }, i) => {
    const at = where[i];
    // Choices look like "A:MRI" or " A: MRI"; the letter prefix is dropped.
    const options = ['Choice A', 'Choice B', 'Choice C', 'Choice D'].map((k) => text(o, k, at).replace(/^[A-D]\s*:\s*/, '')).filter(Boolean);
    const label = text(o, 'Answer_label', at);
    const full = text(o, 'Answer', at);
    if (!label && !full) throw new LoaderError(`${at}: missing Answer_label and Answer`);
    const answer = answerIndex(label, options) ?? answerIndex(full.replace(/^[A-D]\s*:\s*/, ''), options);
    if (answer === undefined) throw new LoaderError(`${at}: answer ${JSON.stringify(label || full)} is none of the choices`);
    return { id: `pmc-vqa/${split}/${i}`, image: need(o, 'Figure_path', at), question: need(o, 'Question', at), options, answer, modality: 'unknown', questionType: 'multiple-choice' };
  });
  return dataset(`pmc-vqa-${split}`, root, imageDir, records, where);
}

export function openOmniMedVqa(root: string, opts: { access?: ('Open-access' | 'Restricted-access')[] } = {}): ManifestDataset<VqaRecord> {
  requireDir(root);
  const records: VqaRecord[] = [];
  const where: string[] = [];
  const read: string[] = [];
  for (const access of opts.access ?? ['Open-access']) {
    const dir = path.join(root, 'QA_information', access);
    if (!fs.existsSync(dir)) continue;
    for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.json')).sort()) {
      const file = path.join(dir, f);
      read.push(file);
      asList(readJson(file), file).forEach((o, i) => {
        const at = `${file}[${i}]`;
        const options = ['option_A', 'option_B', 'option_C', 'option_D'].map((k) => text(o, k, at)).filter(Boolean);
        const gt = need(o, 'gt_answer', at);
        const answer = answerIndex(gt, options);
        if (answer === undefined) throw new LoaderError(`${at}: gt_answer ${JSON.stringify(gt)} is none of the options`);
        where.push(at);
        records.push({
          id: `omnimedvqa/${text(o, 'question_id', at) || `${f}-${i}`}`,
          image: need(o, 'image_path', at),
          question: need(o, 'question', at),
          options,
          answer,
          modality: text(o, 'modality_type', at).toLowerCase() || 'unknown',
          questionType: text(o, 'question_type', at).toLowerCase() || 'unknown',
        });
      });
    }
  }
  if (records.length === 0) {
    throw new LoaderError(read.length ? `OmniMedVQA: no questions in ${read.join(', ')}` : `OmniMedVQA: no QA_information/*/*.json under ${root}`);
  }
  return dataset('omnimedvqa', root, '.', records, where);
}
