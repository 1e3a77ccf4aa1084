// Heatmaps as vega-lite rect + text layers: one cell per (row, column) with its value and item count
// in the label; cells with few items are faded (and say n), empty cells are grey. Used for the
// modality × question-type matrices of a run and for the cross-modality matrix of several runs.
import type { EvalModeResult, EvalResult } from '../eval';
import type { Spec } from './render';

export interface HeatCell {
  row: string;
  col: string;
  /** null: no items in the cell. */
  value: number | null;
  /** Items behind the value. */
  n: number;
  /** Outline the cell (e.g. a modality seen in training). */
  outlined?: boolean;
}

export interface HeatmapOptions {
  title: string;
  rows: string[];
  cols: string[];
  cells: HeatCell[];
  rowTitle: string;
  colTitle: string;
  /** Values in [-1, 1] around 0 (differences) rather than [0, 1]. */
  diverging?: boolean;
  /** Cells with fewer items (but some) are faded; empty ones are grey. Default 5. */
  minItems?: number;
  /** Extra subtitle line. */
  note?: string;
}

export const MIN_ITEMS = 5;

/** The cell's label: value and item count on two lines. */
export const cellLabel = (value: number | null, n: number, diverging = false): string =>
  `${value === null ? '–' : `${diverging && value > 0 ? '+' : ''}${value.toFixed(2)}`}\nn=${n}`;

/** A layered rect + text heatmap (one vega-lite unit spec, concat-able). */
export function heatmapSpec(o: HeatmapOptions): Spec {
  const min = o.minItems ?? MIN_ITEMS;
  const values = o.cells.map((c) => ({ row: c.row, col: c.col, value: c.value, n: c.n, few: c.n > 0 && c.n < min, outlined: c.outlined === true, label: cellLabel(c.value, c.n, o.diverging) }));
  const subtitle = [`faded: fewer than ${min} items; grey: none`, ...(o.note ? [o.note] : [])];
  const x = { field: 'col', type: 'nominal', sort: o.cols, title: o.colTitle, axis: { labelAngle: -30 } };
  const y = { field: 'row', type: 'nominal', sort: o.rows, title: o.rowTitle, axis: { labelLimit: 400 } };
  const scale = o.diverging ? { domain: [-1, 1], scheme: 'redblue' } : { domain: [0, 1], scheme: 'blues' };
  return {
    title: { text: o.title, subtitle },
    width: Math.max(120, 52 * o.cols.length),
    height: Math.max(60, 34 * o.rows.length),
    data: { values },
    encoding: { x, y },
    layer: [
      {
        mark: { type: 'rect' },
        encoding: {
          color: { condition: { test: 'datum.value === null', value: '#e6e6e6' }, field: 'value', type: 'quantitative', scale, title: o.diverging ? 'Δ' : 'Acc@1' },
          opacity: { condition: { test: 'datum.few', value: 0.45 }, value: 1 },
          stroke: { condition: { test: 'datum.outlined', value: 'black' }, value: null },
          strokeWidth: { condition: { test: 'datum.outlined', value: 2.5 }, value: 0 },
        },
      },
      {
        mark: { type: 'text', lineBreak: '\n', fontSize: 10 },
        encoding: {
          text: { field: 'label' },
          color: { condition: { test: 'datum.value !== null && abs(datum.value) > 0.6 && !datum.few', value: 'white' }, value: 'black' },
        },
      },
    ],
  };
}

export type Mode = 'withTools' | 'withoutTools';

/** (modality, question type) cells of one mode of an eval; null value where a cell has no items. */
export function modeCells(r: EvalModeResult, rows: string[], cols: string[]): HeatCell[] {
  const m = r.byModalityQuestionType ?? {};
  return rows.flatMap((row) => cols.map((col) => ({ row, col, value: m[row]?.[col]?.acc1 ?? null, n: m[row]?.[col]?.items ?? 0 })));
}

/** Cell-wise a − b (same items on both sides: the evals share the held-out index range). */
export function diffCells(a: HeatCell[], b: HeatCell[]): HeatCell[] {
  return a.map((c, i) => ({ ...c, value: c.value === null || b[i].value === null ? null : c.value - b[i].value }));
}

/** Rows (modalities) and columns (question types) present in any mode of the given evals. */
export function cellAxes(evals: EvalResult[]): { modalities: string[]; questionTypes: string[] } {
  const mods = new Set<string>();
  const qts = new Set<string>();
  for (const e of evals) {
    for (const r of [e.withTools, e.withoutTools]) {
      for (const [m, byQ] of Object.entries(r?.byModalityQuestionType ?? {})) {
        mods.add(m);
        for (const q of Object.keys(byQ)) qts.add(q);
      }
    }
  }
  const sort = (s: Set<string>): string[] => [...s].sort((a, b) => a.localeCompare(b));
  return { modalities: sort(mods), questionTypes: sort(qts) };
}

/**
 * The modality × question-type Acc@1 heatmaps of one policy: with tools, without tools, and tools −
 * no tools, side by side. `label` names the modality rows (e.g. "ct (unseen)").
 */
export function cellsSpec(name: string, e: EvalResult, label: (m: string) => string = (m) => m, axes = cellAxes([e])): Spec | undefined {
  const { modalities, questionTypes } = axes;
  if (!modalities.length || !e.withTools.byModalityQuestionType) return undefined;
  const rows = modalities.map(label);
  const relabel = (cs: HeatCell[]): HeatCell[] => cs.map((c) => ({ ...c, row: label(c.row) }));
  const tools = modeCells(e.withTools, modalities, questionTypes);
  const panel = (title: string, cells: HeatCell[], diverging = false): Spec => heatmapSpec({ title, rows, cols: questionTypes, cells: relabel(cells), rowTitle: 'modality', colTitle: 'question type', diverging });
  const panels = [panel(`${name}: Acc@1 with tools`, tools)];
  if (e.withoutTools?.byModalityQuestionType) {
    const none = modeCells(e.withoutTools, modalities, questionTypes);
    panels.push(panel(`${name}: Acc@1 without tools`, none), panel(`${name}: tools − no tools`, diffCells(tools, none), true));
  }
  return { hconcat: panels, resolve: { scale: { color: 'independent' } } };
}

/** SFT+GRPO − SFT per cell, with tools (same held-out items). */
export function gainSpec(sft: EvalResult, final: EvalResult, label: (m: string) => string = (m) => m): Spec | undefined {
  const { modalities, questionTypes } = cellAxes([sft, final]);
  if (!modalities.length || !sft.withTools.byModalityQuestionType || !final.withTools.byModalityQuestionType) return undefined;
  const cells = diffCells(modeCells(final.withTools, modalities, questionTypes), modeCells(sft.withTools, modalities, questionTypes)).map((c) => ({ ...c, row: label(c.row) }));
  return heatmapSpec({ title: 'GRPO gain: SFT+GRPO − SFT, Acc@1 with tools', rows: modalities.map(label), cols: questionTypes, cells, rowTitle: 'modality', colTitle: 'question type', diverging: true });
}
