// JSONL: one item per line, {image, question, options, answer, modality, question_type} (+ id, box,
// slice, axis). `answer` may be an index, a letter or an option's text; without options it is the
// reference text of an open question. Errors name the file and line.
import * as path from 'path';
import { z } from 'zod';
import type { Box } from '../../tools/image';
import { describeIssue } from '../../tools/schemas';
import { answerIndex, LoaderError, loadRow, readText, resolveInside } from './common';
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
  return parseLines(text, file).map((r) => r.rec);
}

/** The records with their 1-based line numbers (so that lazy image errors can name the line). */
function parseLines(text: string, file: string): { rec: JsonlRecord; line: number }[] {
  const out: { rec: JsonlRecord; line: number }[] = [];
  text.split(/\r?\n/).forEach((raw, k) => {
    if (raw.trim() === '') return;
    const where = `${file}:${k + 1}`;
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch (err) {
      throw new LoaderError(`${where}: invalid JSON (${err instanceof Error ? err.message : String(err)})`);
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      throw new LoaderError(`${where}: expected a JSON object but found ${v === null ? 'null' : Array.isArray(v) ? 'a list' : `a ${typeof v}`}`);
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
    out.push({ rec: { ...rec, id: rec.id === undefined ? `${path.basename(file)}:${k + 1}` : String(rec.id), answerValue }, line: k + 1 });
  });
  return out;
}

export function openJsonl(file: string, opts: JsonlOptions = {}): ManifestDataset<JsonlRecord> {
  const root = opts.root ?? path.dirname(path.resolve(file));
  const parsed = parseLines(readText(file), file);
  return new ManifestDataset(opts.name ?? path.basename(file), parsed.map((p) => p.rec), (r, i) =>
    loadRow(`${file}:${parsed[i].line}`, async () => ({
      id: r.id,
      image: await readImageFile(resolveInside(root, r.image, 'image'), { slice: r.slice, axis: r.axis }),
      question: r.question,
      options: r.options,
      answer: r.answerValue,
      modality: r.modality,
      questionType: r.question_type,
      box: r.box ? (r.box.map(Math.round) as Box) : undefined,
    })),
  );
}
