// JSONL: one item per line, {image, question, options, answer, modality, question_type} (+ id, box,
// slice, axis, split). `answer` may be an index, a letter or an option's text; without options it is
// the reference text of an open question. Errors name the file and line. The same record schema
// serves the JSON manifest (a .json list of such records, openJsonManifest) and the CSV manifest
// (csv.ts, openCsvManifest).
import * as path from 'path';
import { z } from 'zod';
import type { Box } from '../../tools/image';
import { describeIssue } from '../../tools/schemas';
import type { Split } from '../types';
import { answerIndex, checkRow, guardRow, LoaderError, loadRow, readJson, readText, resolveInside, rowInfo, splitName, type OpenOptions, type Rows } from './common';
import { readImageFile } from './image_file';
import { ManifestDataset } from './manifest';

const line = z.object({
  id: z.union([z.string(), z.number()]).optional(),
  /** Image path, relative to the root. */
  image: z.string().min(1),
  /** The question text. */
  question: z.string(),
  /** Option texts for multiple choice; none for an open question. */
  options: z.array(z.string()).max(26).default([]),
  /** The answer as written: an option index, a letter, an option's text, or (open questions) the reference text. */
  answer: z.union([z.string(), z.number()]),
  /** Imaging modality (default 'unknown'). */
  modality: z.string().default('unknown'),
  /** Question type (default 'unknown'). */
  question_type: z.string().default('unknown'),
  /** Finding box [x1, y1, x2, y2) in original pixels. */
  box: z.array(z.number()).length(4).optional(),
  /** NIfTI: slice index along `axis` (over the loader's default). */
  slice: z.number().int().optional(),
  /** NIfTI: axis to cut across (over the loader's default). */
  axis: z.union([z.literal(0), z.literal(1), z.literal(2)]).optional(),
  split: z.string().nullish(),
});

/**
 * One parsed row of a data.jsonl.
 * @interface
 */
export type JsonlRecord = Omit<z.infer<typeof line>, 'split'> & {
  /** The row's id as text (a default id when the row has none). */
  id: string;
  /** The answer resolved: an option index (multiple choice) or the reference text (open questions). */
  answerValue: number | string;
  /** The row's own split ("validate" and "validation" read as 'val'), when it gives one. */
  split?: Split;
};

export interface JsonlOptions extends OpenOptions {
  /** Directory image paths are relative to (and must stay inside). Default: the file's directory. */
  root?: string;
  /** Dataset name. Default: the file name. */
  name?: string;
}

/** One record (a parsed JSON value) → JsonlRecord, or a LoaderError naming `where`. */
export function toJsonlRecord(v: unknown, where: string, defaultId: string): JsonlRecord {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new LoaderError(`${where}: expected a JSON object but found ${v === null ? 'null' : Array.isArray(v) ? 'a list' : `a ${typeof v}`}`);
  }
  const r = line.safeParse(v);
  if (!r.success) throw new LoaderError(`${where}: ${describeIssue(r.error.issues[0], v)}`);
  const { split: rawSplit, ...rec } = r.data;
  let answerValue: number | string = String(rec.answer);
  if (rec.options.length > 0) {
    const a = answerIndex(rec.answer, rec.options);
    if (a === undefined) throw new LoaderError(`${where}: answer ${JSON.stringify(rec.answer)} is none of the options`);
    answerValue = a;
  }
  let split: Split | undefined;
  try {
    split = splitName(rawSplit);
  } catch (err) {
    throw new LoaderError(`${where}: ${(err as Error).message}`);
  }
  return { ...rec, id: rec.id === undefined ? defaultId : String(rec.id), answerValue, ...(split ? { split } : {}) };
}

export function parseJsonl(text: string, file: string): JsonlRecord[] {
  return parseLines(text, file, '.', {}).map((r) => r.rec);
}

/** The records with where they are ("file:line"), bad lines thrown or skipped (opts.onSkip). */
function parseLines(text: string, file: string, root: string, opts: OpenOptions): { rec: JsonlRecord; where: string }[] {
  const out: { rec: JsonlRecord; where: string }[] = [];
  text.split(/\r?\n/).forEach((raw, k) => {
    if (raw.trim() === '') return;
    const where = `${file}:${k + 1}`;
    const rec = guardRow(opts, where, () => {
      let v: unknown;
      try {
        v = JSON.parse(raw);
      } catch (err) {
        throw new LoaderError(`${where}: invalid JSON (${err instanceof Error ? err.message : String(err)})`);
      }
      const rec = toJsonlRecord(v, where, `${path.basename(file)}:${k + 1}`);
      checkRow(opts, where, root, rec.id, rec.image);
      return rec;
    });
    if (rec) out.push({ rec, where });
  });
  return out;
}

/**
 * Rows of the JSONL/JSON/CSV record schema (parsed and checked with checkRow), images loaded lazily
 * from inside `root` (per-row slice/axis over opts.slice/axis).
 */
export function recordRows(name: string, root: string, kept: { rec: JsonlRecord; where: string }[], opts: OpenOptions): Rows<JsonlRecord> {
  const where = kept.map((p) => p.where);
  return {
    name,
    records: kept.map((p) => p.rec),
    where,
    info: kept.map(({ rec: r }) => rowInfo({ options: r.options, answer: r.answerValue, modality: r.modality, questionType: r.question_type, hasBox: r.box !== undefined, split: r.split })),
    load: (r, i) =>
      loadRow(where[i], async () => ({
        id: r.id,
        image: await readImageFile(resolveInside(root, r.image, 'image'), { slice: r.slice ?? opts.slice, axis: r.axis ?? opts.axis }),
        question: r.question,
        options: r.options,
        answer: r.answerValue,
        modality: r.modality,
        questionType: r.question_type,
        box: r.box ? (r.box.map(Math.round) as Box) : undefined,
      })),
  };
}

export function jsonlRows(file: string, opts: JsonlOptions = {}): Rows<JsonlRecord> {
  const root = opts.root ?? path.dirname(path.resolve(file));
  return recordRows(opts.name ?? path.basename(file), root, parseLines(readText(file, opts.onFile), file, root, opts), opts);
}

export function openJsonl(file: string, opts: JsonlOptions = {}): ManifestDataset<JsonlRecord> {
  const rows = jsonlRows(file, opts);
  return new ManifestDataset(rows.name, rows.records, rows.load);
}

/**
 * A JSON manifest: a .json file holding a list of JSONL records (or {"items": [...]}); entries are
 * named "file[i]" and default ids are "name.json[i]".
 */
export function jsonManifestRows(file: string, opts: JsonlOptions = {}): Rows<JsonlRecord> {
  const root = opts.root ?? path.dirname(path.resolve(file));
  const doc = readJson(file, opts.onFile);
  const list = Array.isArray(doc) ? doc : doc !== null && typeof doc === 'object' && Array.isArray((doc as { items?: unknown }).items) ? (doc as { items: unknown[] }).items : undefined;
  if (!list) throw new LoaderError(`${file}: expected a JSON list of records (or {"items": [...]})`);
  const parsed: { rec: JsonlRecord; where: string }[] = [];
  list.forEach((v, i) => {
    const where = `${file}[${i}]`;
    const rec = guardRow(opts, where, () => {
      const r = toJsonlRecord(v, where, `${path.basename(file)}[${i}]`);
      checkRow(opts, where, root, r.id, r.image);
      return r;
    });
    if (rec) parsed.push({ rec, where });
  });
  return recordRows(opts.name ?? path.basename(file), root, parsed, opts);
}

export function openJsonManifest(file: string, opts: JsonlOptions = {}): ManifestDataset<JsonlRecord> {
  const rows = jsonManifestRows(file, opts);
  return new ManifestDataset(rows.name, rows.records, rows.load);
}
