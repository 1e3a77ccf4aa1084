// Cross-modality generalization (Med-R1): runs trained on subsets of the modalities
// (`env.trainModalities`), each evaluated on every modality; rows = training subset, columns = test
// modality, cells = held-out Acc@1 with the item count, seen modalities outlined. Written as a
// heatmap (SVG + PNG), a markdown table and the JSON it came from.
import * as fs from 'fs';
import * as path from 'path';
import type { EvalResult } from '../eval';
import { envModalities } from '../train/envs';
import { heatmapSpec, type HeatCell } from './heatmap';
import { renderChart, type Spec } from './render';

export interface MatrixOptions {
  /** Which evaluation of each run: the final policy (default) or the SFT policy. */
  eval?: 'final' | 'sft';
  /** With tools (default) or with tool calls banned. */
  tools?: boolean;
}

export interface MatrixRow {
  dir: string;
  label: string;
  /** Modalities trained on. */
  train: string[];
  /** Test modality → Acc@1 and items. */
  cells: Record<string, { acc1: number; items: number }>;
  /** Item-weighted Acc@1 over seen / unseen test modalities (null: none). */
  seen: number | null;
  unseen: number | null;
}

export interface Matrix {
  eval: 'final' | 'sft';
  tools: boolean;
  /** Test modalities (columns), union over runs. */
  modalities: string[];
  rows: MatrixRow[];
}

const readJson = <T>(file: string): T => JSON.parse(fs.readFileSync(file, 'utf8')) as T;

/** Assembles the matrix from run directories (config.json + eval_final.json or eval_sft.json each). */
export function assembleMatrix(dirs: string[], o: MatrixOptions = {}): Matrix {
  const which = o.eval ?? 'final';
  const tools = o.tools ?? true;
  if (!dirs.length) throw new RangeError('Expected at least one run directory');
  const rows: MatrixRow[] = dirs.map((dir) => {
    const cfgFile = path.join(dir, 'config.json');
    const evalFile = path.join(dir, `eval_${which}.json`);
    for (const f of [cfgFile, evalFile]) if (!fs.existsSync(f)) throw new Error(`${dir}: no ${path.basename(f)} (a finished medgym run directory is needed)`);
    const env = (readJson<{ env?: { id?: string; trainModalities?: string[] } }>(cfgFile).env ?? {});
    const e = readJson<EvalResult>(evalFile);
    const mode = tools ? e.withTools : e.withoutTools;
    if (!mode) throw new Error(`${evalFile} has no evaluation ${tools ? 'with' : 'without'} tools`);
    const cells = Object.fromEntries(Object.entries(mode.byModality).map(([m, g]) => [m, { acc1: g.acc1, items: g.items }]));
    const train = env.trainModalities ?? envModalities(env.id ?? 'MedVista-Synth-v0') ?? Object.keys(cells);
    const mean = (ms: string[]): number | null => {
      const n = ms.reduce((s, m) => s + cells[m].items, 0);
      return n ? ms.reduce((s, m) => s + cells[m].acc1 * cells[m].items, 0) / n : null;
    };
    const tested = Object.keys(cells);
    return {
      dir,
      label: env.trainModalities ? env.trainModalities.join('+') : 'all',
      train: [...train],
      cells,
      seen: mean(tested.filter((m) => train.includes(m))),
      unseen: mean(tested.filter((m) => !train.includes(m))),
    };
  });
  // Two runs on the same subset (e.g. seeds) stay two rows, told apart by their directory.
  const count = new Map<string, number>();
  for (const r of rows) count.set(r.label, (count.get(r.label) ?? 0) + 1);
  for (const r of rows) if (count.get(r.label)! > 1) r.label = `${r.label} [${path.basename(path.resolve(r.dir))}]`;
  const modalities = [...new Set(rows.flatMap((r) => Object.keys(r.cells)))].sort((a, b) => a.localeCompare(b));
  return { eval: which, tools, modalities, rows };
}

const policyName = (m: Matrix): string => (m.eval === 'final' ? 'SFT+GRPO' : 'SFT');

export function matrixSpec(m: Matrix): Spec {
  const cells: HeatCell[] = m.rows.flatMap((r) => m.modalities.map((mod) => ({ row: r.label, col: mod, value: r.cells[mod]?.acc1 ?? null, n: r.cells[mod]?.items ?? 0, outlined: r.train.includes(mod) })));
  return heatmapSpec({
    title: `Cross-modality generalization: ${policyName(m)} Acc@1 ${m.tools ? 'with' : 'without'} tools`,
    rows: m.rows.map((r) => r.label),
    cols: m.modalities,
    cells,
    rowTitle: 'trained on',
    colTitle: 'tested on (held-out items)',
    note: 'outlined: modality seen in training',
  });
}

const f3 = (x: number | null | undefined): string => (x === null || x === undefined ? '–' : x.toFixed(3));

export function matrixMarkdown(m: Matrix): string[] {
  return [
    `Acc@1 of the ${policyName(m)} policy ${m.tools ? 'with' : 'without'} tools on held-out items, by test modality (items in parentheses; **bold**: seen in training).`,
    '',
    `| trained on | ${m.modalities.join(' | ')} | seen | unseen |`,
    `|---|${m.modalities.map(() => '---').join('|')}|---|---|`,
    ...m.rows.map((r) => {
      const cell = (mod: string): string => {
        const c = r.cells[mod];
        if (!c) return '–';
        const v = `${c.acc1.toFixed(3)} (${c.items})`;
        return r.train.includes(mod) ? `**${v}**` : v;
      };
      return `| ${r.label} | ${m.modalities.map(cell).join(' | ')} | ${f3(r.seen)} | ${f3(r.unseen)} |`;
    }),
    '',
    'Runs:',
    '',
    ...m.rows.map((r) => `- ${r.label}: \`${path.resolve(r.dir)}\``),
  ];
}

/** Writes <out>/matrix.{md,svg,png,json}. */
export async function writeMatrix(dirs: string[], out: string, o: MatrixOptions = {}): Promise<{ markdown: string; svg: string; png: string; json: string; matrix: Matrix }> {
  const m = assembleMatrix(dirs, o);
  fs.mkdirSync(out, { recursive: true });
  const { svg, png } = await renderChart(matrixSpec(m));
  const files = { markdown: path.join(out, 'matrix.md'), svg: path.join(out, 'matrix.svg'), png: path.join(out, 'matrix.png'), json: path.join(out, 'matrix.json') };
  fs.writeFileSync(files.svg, svg);
  fs.writeFileSync(files.png, png);
  fs.writeFileSync(files.json, JSON.stringify(m, null, 2) + '\n');
  fs.writeFileSync(files.markdown, ['# medgym cross-modality matrix', '', '![matrix](matrix.png) ([svg](matrix.svg))', '', ...matrixMarkdown(m)].join('\n') + '\n');
  return { ...files, matrix: m };
}
