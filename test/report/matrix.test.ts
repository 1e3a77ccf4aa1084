// `medgym matrix` logic: the train-subset × test-modality Acc@1 matrix assembled from run dirs.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { assembleMatrix, matrixMarkdown, matrixSpec } from '../../src/report';
import type { EvalResult } from '../../src/eval';
import { fakeEval } from './fake_run';

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-matrix-'));
afterAll(() => fs.rmSync(TMP, { recursive: true, force: true }));

function run(name: string, trainModalities: string[] | undefined, seed: number): { dir: string; e: EvalResult; sft: EvalResult } {
  const dir = path.join(TMP, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ env: { id: 'MedVista-Synth-v0', ...(trainModalities ? { trainModalities } : {}) } }));
  const e = fakeEval('final', seed).result;
  const sft = fakeEval('sft', seed + 50).result;
  fs.writeFileSync(path.join(dir, 'eval_final.json'), JSON.stringify(e));
  fs.writeFileSync(path.join(dir, 'eval_sft.json'), JSON.stringify(sft));
  return { dir, e, sft };
}

test('rows are training subsets, columns test modalities, cells Acc@1 and items; seen/unseen means are item-weighted', () => {
  const a = run('a', ['ct', 'mri', 'xray'], 1);
  const b = run('b', ['fundus', 'oct'], 2);
  const m = assembleMatrix([a.dir, b.dir]);
  expect(m.rows.map((r) => r.label)).toEqual(['ct+mri+xray', 'fundus+oct']);
  expect(m.modalities).toEqual([...new Set([...Object.keys(a.e.withTools.byModality), ...Object.keys(b.e.withTools.byModality)])].sort());
  for (const [r, { e }] of [[m.rows[0], a], [m.rows[1], b]] as const) {
    for (const [mod, g] of Object.entries(e.withTools.byModality)) expect(r.cells[mod]).toEqual({ acc1: g.acc1, items: g.items });
    const groups = Object.entries(e.withTools.byModality);
    const mean = (keep: (mod: string) => boolean): number => {
      const gs = groups.filter(([mod]) => keep(mod)).map(([, g]) => g);
      return gs.reduce((s, g) => s + g.acc1 * g.items, 0) / gs.reduce((s, g) => s + g.items, 0);
    };
    expect(r.seen).toBeCloseTo(mean((mod) => r.train.includes(mod)), 12);
    expect(r.unseen).toBeCloseTo(mean((mod) => !r.train.includes(mod)), 12);
  }
  // Heatmap: one cell per (row, column); outlined exactly where the modality was trained on.
  const cells = (matrixSpec(m).data as { values: { row: string; col: string; value: number | null; n: number; outlined: boolean }[] }).values;
  expect(cells).toHaveLength(2 * m.modalities.length);
  for (const c of cells) {
    const r = m.rows.find((x) => x.label === c.row)!;
    expect(c.outlined).toBe(r.train.includes(c.col));
    expect(c.n).toBe(r.cells[c.col]?.items ?? 0);
  }
  // Table: bold cells are the seen ones that were tested.
  const md = matrixMarkdown(m).join('\n');
  const bold = (md.match(/\*\*\d\.\d{3} \(\d+\)\*\*/g) ?? []).length;
  expect(bold).toBe(m.rows.reduce((s, r) => s + r.train.filter((t) => r.cells[t]).length, 0));
});

test('the SFT eval or the no-tools mode on request; a run on all modalities has no unseen; same subsets stay apart', () => {
  const a = run('c', undefined, 3);
  const b = run('d', undefined, 4);
  const m = assembleMatrix([a.dir, b.dir], { eval: 'sft', tools: false });
  expect(m.rows.map((r) => r.label)).toEqual(['all [c]', 'all [d]']);
  expect(m.rows[0].unseen).toBeNull();
  expect(m.rows[0].train).toHaveLength(8);
  for (const [mod, g] of Object.entries(a.sft.withoutTools!.byModality)) expect(m.rows[0].cells[mod]).toEqual({ acc1: g.acc1, items: g.items });
});

test('a directory without its eval names the missing file', () => {
  const dir = path.join(TMP, 'empty');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'config.json'), '{}');
  expect(() => assembleMatrix([dir])).toThrow(/no eval_final\.json/);
  expect(() => assembleMatrix([])).toThrow(/at least one run/);
});
