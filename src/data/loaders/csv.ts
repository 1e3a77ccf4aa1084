// A small RFC 4180 CSV reader (quoted fields, doubled quotes, newlines in quotes) → row objects.
import { LoaderError } from './common';

export function parseCsv(text: string, file = 'file.csv'): Record<string, string>[] {
  return parseCsvRows(text, file).map((r) => r.row);
}

/** The rows with the 1-based line each starts on (quoted newlines make it differ from the row number). */
export function parseCsvRows(text: string, file = 'file.csv'): { row: Record<string, string>; line: number }[] {
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
  const header = nonEmpty[0].cells.map((h) => h.trim());
  return nonEmpty.slice(1).map((r) => ({ row: Object.fromEntries(header.map((h, k) => [h, r.cells[k] ?? ''])), line: r.line }));
}
