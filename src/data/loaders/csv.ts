// A small RFC 4180 CSV reader (quoted fields, doubled quotes, newlines in quotes) → row objects;
// and the CSV manifest: one item per row with the JSONL record's columns (openCsvManifest).
import * as path from 'path';
import { checkRow, guardRow, LoaderError, readText, type Rows } from './common';
import { recordRows, toJsonlRecord, type JsonlOptions, type JsonlRecord } from './jsonl';
import { ManifestDataset } from './manifest';

export function parseCsv(text: string, file = 'file.csv'): Record<string, string>[] {
  return parseCsvRows(text, file).map((r) => r.row);
}

/** The rows with the 1-based line each starts on (quoted newlines make it differ from the row number). */
export function parseCsvRows(text: string, file = 'file.csv'): { row: Record<string, string>; line: number }[] {
  const { header, rows } = parseCsvTable(text, file);
  return rows.map((r) => ({ row: Object.fromEntries(header.map((h, k) => [h, r.cells[k] ?? ''])), line: r.line }));
}

/** The header (trimmed) and the raw cells of each non-empty row after it, with the line it starts on. */
export function parseCsvTable(text: string, file = 'file.csv'): { header: string[]; rows: { cells: string[]; line: number }[] } {
  const rows: { cells: string[]; line: number }[] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let line = 1;
  let rowLine = 1;
  let quoteLine = 1;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '\n' || (ch === '\r' && text[i + 1] !== '\n')) line++;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"' && field === '') {
      quoted = true;
      quoteLine = line;
    } else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') {
        i++;
        line++;
      }
      row.push(field);
      rows.push({ cells: row, line: rowLine });
      row = [];
      field = '';
      rowLine = line;
    } else field += ch;
  }
  if (quoted) throw new LoaderError(`${file}:${quoteLine}: unterminated quoted field`);
  if (field !== '' || row.length) {
    row.push(field);
    rows.push({ cells: row, line: rowLine });
  }
  const nonEmpty = rows.filter((r) => r.cells.some((c) => c.trim() !== ''));
  if (nonEmpty.length === 0) throw new LoaderError(`${file}: empty CSV`);
  return { header: nonEmpty[0].cells.map((h) => h.trim()), rows: nonEmpty.slice(1) };
}

/** "[1, 2]" as JSON, else `sep`-separated parts; anything unparsable stays text (the schema then names it). */
function listCell(cell: string, sep: RegExp): unknown {
  const t = cell.trim();
  if (t.startsWith('[')) {
    try {
      return JSON.parse(t);
    } catch {
      return t;
    }
  }
  return t.split(sep).map((x) => x.trim());
}

const numberCell = (cell: string): unknown => (/^\s*-?\d+(\.\d+)?\s*$/.test(cell) ? Number(cell) : cell);

/** A CSV manifest row (cells by lower-case column name) → the JSON value of a JSONL record. */
function csvRecordValue(cells: Record<string, string>): Record<string, unknown> {
  const v: Record<string, unknown> = Object.create(null);
  const has = (k: string): boolean => Object.prototype.hasOwnProperty.call(cells, k) && cells[k].trim() !== '';
  for (const k of ['id', 'image', 'question', 'modality', 'question_type', 'split']) if (has(k)) v[k] = k === 'question' ? cells[k] : cells[k].trim();
  let options: unknown = [];
  if (has('options')) {
    options = listCell(cells.options, /\|/);
  } else {
    // option_A … option_Z columns (OmniMedVQA style), in letter order, empty cells left out.
    const letters = Object.keys(cells)
      .map((k) => /^option_([a-z])$/.exec(k)?.[1])
      .filter((x): x is string => x !== undefined)
      .sort();
    options = letters.map((c) => cells[`option_${c}`].trim()).filter(Boolean);
  }
  v.options = options;
  if (Object.prototype.hasOwnProperty.call(cells, 'answer')) {
    const a = cells.answer.trim();
    // A 0-based index is a number unless some option has that text.
    const opts = Array.isArray(options) ? options : [];
    v.answer = opts.length > 0 && /^\d+$/.test(a) && !opts.some((o) => typeof o === 'string' && o.trim() === a) ? Number(a) : a;
  }
  if (has('box')) {
    const b = listCell(cells.box, /[\s,;]+/);
    v.box = Array.isArray(b) ? b.map((x) => (typeof x === 'string' ? numberCell(x) : x)) : b;
  }
  for (const k of ['slice', 'axis']) if (has(k)) v[k] = numberCell(cells[k]);
  return v;
}

/**
 * A CSV manifest: a header naming (any case) image, question, answer and optionally id, options
 * (a JSON list or "a|b|c"; or option_A … option_Z columns), modality, question_type, split, box
 * (JSON or 4 numbers), slice, axis. Image paths are relative to the file's directory (or root).
 * A row with more cells than the header is malformed; errors name "file:line".
 */
export function csvManifestRows(file: string, opts: JsonlOptions = {}): Rows<JsonlRecord> {
  const root = opts.root ?? path.dirname(path.resolve(file));
  const { header, rows } = parseCsvTable(readText(file, opts.onFile), file);
  const cols = header.map((h) => h.toLowerCase());
  const missing = ['image', 'question', 'answer'].filter((c) => !cols.includes(c));
  if (missing.length) throw new LoaderError(`${file}:1: the header has no ${missing.map((c) => JSON.stringify(c)).join(', ')} column (it has ${header.map((h) => JSON.stringify(h)).join(', ')})`);
  const parsed: { rec: JsonlRecord; where: string }[] = [];
  for (const r of rows) {
    const where = `${file}:${r.line}`;
    const rec = guardRow(opts, where, () => {
      if (r.cells.length > header.length) throw new LoaderError(`${where}: malformed row: ${r.cells.length} fields but the header has ${header.length}`);
      const cells: Record<string, string> = Object.create(null);
      cols.forEach((c, k) => (cells[c] = r.cells[k] ?? ''));
      const rec = toJsonlRecord(csvRecordValue(cells), where, `${path.basename(file)}:${r.line}`);
      checkRow(opts, where, root, rec.id, rec.image);
      return rec;
    });
    if (rec) parsed.push({ rec, where });
  }
  return recordRows(opts.name ?? path.basename(file), root, parsed, opts);
}

export function openCsvManifest(file: string, opts: JsonlOptions = {}): ManifestDataset<JsonlRecord> {
  const rows = csvManifestRows(file, opts);
  return new ManifestDataset(rows.name, rows.records, rows.load);
}
