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
import { answerIndex, LoaderError, readJson, readText, requireDir, resolveInside } from './common';
import { readImageFile } from './image_file';
import { ManifestDataset } from './manifest';
import { parseCsv } from './csv';

export interface VqaRecord {
  id: string;
  image: string;
  question: string;
  options: string[];
  answer: number | string;
  modality: string;
  questionType: string;
}

const str = (v: unknown): string => (v === undefined || v === null ? '' : String(v)).trim();

function closedOrOpen(answer: string): { options: string[]; answer: number | string } {
  const a = answer.toLowerCase();
  if (a === 'yes' || a === 'no') return { options: ['yes', 'no'], answer: a === 'yes' ? 0 : 1 };
  return { options: [], answer };
}

function dataset(name: string, root: string, imageDir: string, records: VqaRecord[]): ManifestDataset<VqaRecord> {
  return new ManifestDataset(name, records, async (r): Promise<VqaItem> => ({
    id: r.id,
    image: await readImageFile(resolveInside(root, path.join(imageDir, r.image), 'image')),
    question: r.question,
    options: r.options,
    answer: r.answer,
    modality: r.modality,
    questionType: r.questionType,
  }));
}

const asList = (v: unknown, file: string): Record<string, unknown>[] => {
  if (!Array.isArray(v)) throw new LoaderError(`${file}: expected a JSON list of questions`);
  return v.map((x, i) => {
    if (x === null || typeof x !== 'object') throw new LoaderError(`${file}: entry ${i} is not an object`);
    return x as Record<string, unknown>;
  });
};

const need = (o: Record<string, unknown>, key: string, where: string): string => {
  const v = str(o[key]);
  if (!v) throw new LoaderError(`${where}: missing ${key}`);
  return v;
};

export function openVqaRad(root: string): ManifestDataset<VqaRecord> {
  requireDir(root);
  const json = fs.readdirSync(root).filter((f) => f.toLowerCase().endsWith('.json'));
  if (json.length === 0) throw new LoaderError(`VQA-RAD: no .json annotation file in ${root}`);
  const file = path.join(root, json[0]);
  const imageDir = ['VQA_RAD Image Folder', 'images'].find((d) => fs.existsSync(path.join(root, d))) ?? '.';
  const records = asList(readJson(file), file).map((o, i) => {
    const where = `${file}[${i}]`;
    const ans = closedOrOpen(need(o, 'answer', where));
    const organ = str(o.image_organ).toLowerCase();
    return {
      id: `vqa-rad/${str(o.qid) || i}`,
      image: need(o, 'image_name', where),
      question: need(o, 'question', where),
      ...ans,
      modality: organ === 'chest' ? 'xray' : organ === 'head' ? 'ct/mri' : organ === 'abd' ? 'ct' : 'unknown',
      questionType: `${str(o.answer_type).toLowerCase() || 'open'}:${str(o.question_type).toLowerCase()}`,
    };
  });
  return dataset('vqa-rad', root, imageDir, records);
}

export function openSlake(root: string, opts: { split?: 'train' | 'validate' | 'test'; lang?: string } = {}): ManifestDataset<VqaRecord> {
  requireDir(root);
  const split = opts.split ?? 'train';
  const file = path.join(root, `${split}.json`);
  if (!fs.existsSync(file)) throw new LoaderError(`SLAKE: ${file} not found`);
  const lang = opts.lang ?? 'en';
  const records = asList(readJson(file), file)
    .filter((o) => str(o.q_lang || 'en') === lang)
    .map((o, i) => {
      const where = `${file}[${i}]`;
      return {
        id: `slake/${str(o.qid) || `${split}-${i}`}`,
        image: need(o, 'img_name', where),
        question: need(o, 'question', where),
        ...closedOrOpen(need(o, 'answer', where)),
        modality: str(o.modality).toLowerCase().replace('x-ray', 'xray') || 'unknown',
        questionType: `${str(o.answer_type).toLowerCase() || 'open'}:${str(o.content_type).toLowerCase()}`,
      };
    });
  return dataset(`slake-${split}`, root, 'imgs', records);
}

export function openPmcVqa(root: string, opts: { split?: 'train' | 'test' } = {}): ManifestDataset<VqaRecord> {
  requireDir(root);
  const split = opts.split ?? 'train';
  const candidates = [`${split}.csv`, `${split}_2.csv`];
  const name = candidates.find((c) => fs.existsSync(path.join(root, c)));
  if (!name) throw new LoaderError(`PMC-VQA: none of ${candidates.join(', ')} in ${root}`);
  const file = path.join(root, name);
  const rows = parseCsv(readText(file), file);
  const imageDir = ['images', 'figures'].find((d) => fs.existsSync(path.join(root, d))) ?? '.';
  const records = rows.map((o, i) => {
    const where = `${file}:${i + 2}`;
    // Choices look like "A:MRI" or " A: MRI"; the letter prefix is dropped.
    const options = ['Choice A', 'Choice B', 'Choice C', 'Choice D'].map((k) => str(o[k]).replace(/^[A-D]\s*:\s*/, '')).filter(Boolean);
    const answer = answerIndex(str(o.Answer_label), options) ?? answerIndex(str(o.Answer).replace(/^[A-D]\s*:\s*/, ''), options);
    if (answer === undefined) throw new LoaderError(`${where}: answer ${JSON.stringify(o.Answer_label ?? o.Answer)} is none of the choices`);
    return { id: `pmc-vqa/${split}/${i}`, image: need(o, 'Figure_path', where), question: need(o, 'Question', where), options, answer, modality: 'unknown', questionType: 'multiple-choice' };
  });
  return dataset(`pmc-vqa-${split}`, root, imageDir, records);
}

export function openOmniMedVqa(root: string, opts: { access?: ('Open-access' | 'Restricted-access')[] } = {}): ManifestDataset<VqaRecord> {
  requireDir(root);
  const records: VqaRecord[] = [];
  for (const access of opts.access ?? ['Open-access']) {
    const dir = path.join(root, 'QA_information', access);
    if (!fs.existsSync(dir)) continue;
    for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.json')).sort()) {
      const file = path.join(dir, f);
      asList(readJson(file), file).forEach((o, i) => {
        const where = `${file}[${i}]`;
        const options = ['option_A', 'option_B', 'option_C', 'option_D'].map((k) => str(o[k])).filter(Boolean);
        const gt = need(o, 'gt_answer', where);
        const answer = answerIndex(gt, options);
        if (answer === undefined) throw new LoaderError(`${where}: gt_answer ${JSON.stringify(gt)} is none of the options`);
        records.push({
          id: `omnimedvqa/${str(o.question_id) || `${f}-${i}`}`,
          image: need(o, 'image_path', where),
          question: need(o, 'question', where),
          options,
          answer,
          modality: str(o.modality_type).toLowerCase() || 'unknown',
          questionType: str(o.question_type).toLowerCase() || 'unknown',
        });
      });
    }
  }
  if (records.length === 0) throw new LoaderError(`OmniMedVQA: no QA_information/*/*.json under ${root}`);
  return dataset('omnimedvqa', root, '.', records);
}
