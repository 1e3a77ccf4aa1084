// JSONL: one item per line, {image, question, options, answer, modality, question_type} (+ id, box,
// slice, axis). `answer` may be an index, a letter or an option's text; without options it is the
// reference text of an open question. Errors name the file and line.
import * as path from 'path';
import { z } from 'zod';
import type { Box } from '../../tools/image';
import { describeIssue } from '../../tools/schemas';
import { answerIndex, LoaderError, readText, resolveInside } from './common';
import { readImageFile } from './image_file';
import { ManifestDataset } from './manifest';

const line = z.object({
  id: z.union([z.string(), z.number()]).optional(),
  image: z.string().min(1),
  question: z.string(),
  options: z.array(z.string()).max(26).default([]),
  answer: z.union([z.string(), z.number()]),
  modality: z.string().default('unknown'),
  question_type: z.string().default('unknown'),
  box: z.array(z.number()).length(4).optional(),
  slice: z.number().int().optional(),
  axis: z.union([z.literal(0), z.literal(1), z.literal(2)]).optional(),
});

export type JsonlRecord = z.infer<typeof line> & { id: string; answerValue: number | string };

export interface JsonlOptions {
  /** Directory image paths are relative to (and must stay inside). Default: the file's directory. */
  root?: string;
  /** Dataset name. Default: the file name. */
  name?: string;
}

export function parseJsonl(text: string, file: string): JsonlRecord[] {
  const out: JsonlRecord[] = [];
  text.split(/\r?\n/).forEach((raw, k) => {
    if (raw.trim() === '') return;
    const where = `${file}:${k + 1}`;
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch (err) {
      throw new LoaderError(`${where}: invalid JSON (${err instanceof Error ? err.message : String(err)})`);
    }
    const r = line.safeParse(v);
    if (!r.success) throw new LoaderError(`${where}: ${describeIssue(r.error.issues[0], v)}`);
    const rec = r.data;
    let answerValue: number | string = String(rec.answer);
    if (rec.options.length > 0) {
      const a = answerIndex(rec.answer, rec.options);
      if (a === undefined) throw new LoaderError(`${where}: answer ${JSON.stringify(rec.answer)} is none of the options`);
      answerValue = a;
    }
    out.push({ ...rec, id: rec.id === undefined ? `${path.basename(file)}:${k + 1}` : String(rec.id), answerValue });
  });
  return out;
}

export function openJsonl(file: string, opts: JsonlOptions = {}): ManifestDataset<JsonlRecord> {
  const root = opts.root ?? path.dirname(path.resolve(file));
  const records = parseJsonl(readText(file), file);
  return new ManifestDataset(opts.name ?? path.basename(file), records, async (r) => ({
    id: r.id,
    image: await readImageFile(resolveInside(root, r.image, 'image'), { slice: r.slice, axis: r.axis }),
    question: r.question,
    options: r.options,
    answer: r.answerValue,
    modality: r.modality,
    questionType: r.question_type,
    box: r.box ? (r.box.map(Math.round) as Box) : undefined,
  }));
}
