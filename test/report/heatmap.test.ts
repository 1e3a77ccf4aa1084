// The per-cell eval breakdown and the modality × question-type heatmap specs built from it: every
// cell's value and item count against a brute-force count over the item outcomes.
import { breakdown, type ItemOutcome } from '../../src/eval';
import { cellsSpec, gainSpec, heatmapSpec, MIN_ITEMS } from '../../src/report';
import { chartSpecs, modalityLabel, type RunFiles } from '../../src/report';
import { fakeEval, outcomes } from './fake_run';

type Datum = { row: string; col: string; value: number | null; n: number; few: boolean; outlined: boolean; label: string };
const data = (spec: Record<string, unknown>): Datum[] => (spec.data as { values: Datum[] }).values;
const acc = (xs: ItemOutcome[]): number | null => (xs.length ? xs.filter((x) => x.greedyCorrect).length / xs.length : null);

test('breakdown: each (modality, question type) cell counts exactly its items', () => {
  const xs = outcomes(7, 300, 8, 0.4);
  const b = breakdown(xs, 8);
  let total = 0;
  for (const [m, byQ] of Object.entries(b.byModalityQuestionType)) {
    expect(Object.values(byQ).reduce((s, g) => s + g.items, 0)).toBe(b.byModality[m].items);
    for (const [q, g] of Object.entries(byQ)) {
      const mine = xs.filter((x) => x.modality === m && x.questionType === q);
      expect(g.items).toBe(mine.length);
      expect(g.acc1).toBeCloseTo(acc(mine)!, 12);
      expect(g.passAtK).toHaveLength(8);
      // Pass@n is the share of items with at least one correct sample.
      expect(g.passAtK[7]).toBeCloseTo(mine.filter((x) => x.c > 0).length / mine.length, 12);
      total += g.items;
    }
  }
  expect(total).toBe(xs.length);
});

test('cells heatmap: with tools, without tools and their difference, cell by cell, with n and faded small cells', () => {
  const { result, tools, none } = fakeEval('sft', 3, 60, 4);
  const spec = cellsSpec('SFT', result)!;
  const panels = spec.hconcat as Record<string, unknown>[];
  expect(panels).toHaveLength(3);
  const [pt, pn, pd] = panels.map(data);
  const mods = [...new Set(tools.map((x) => x.modality))].sort();
  const qts = [...new Set(tools.map((x) => x.questionType))].sort();
  expect(pt).toHaveLength(mods.length * qts.length);
  let empty = 0;
  for (const [i, d] of pt.entries()) {
    const mine = (xs: ItemOutcome[]) => xs.filter((x) => x.modality === d.row && x.questionType === d.col);
    expect(d.n).toBe(mine(tools).length);
    if (d.n === 0) {
      empty++;
      expect(d.value).toBeNull();
      expect(pn[i].value).toBeNull();
      expect(pd[i].value).toBeNull();
    } else {
      expect(d.value).toBeCloseTo(acc(mine(tools))!, 12);
      expect(pn[i].value).toBeCloseTo(acc(mine(none))!, 12);
      expect(pd[i].value).toBeCloseTo(acc(mine(tools))! - acc(mine(none))!, 12);
    }
    expect(d.label).toContain(`n=${d.n}`);
    expect(d.few).toBe(d.n > 0 && d.n < MIN_ITEMS);
  }
  // 60 items over 40 cells: some cells are empty and some small, so both marks are exercised.
  expect(empty).toBeGreaterThan(0);
  expect(pt.some((d) => d.few && d.n > 0)).toBe(true);
});

test('gain heatmap is SFT+GRPO − SFT per cell; a generic heatmap marks outlined cells', () => {
  const a = fakeEval('sft', 11).result;
  const b = fakeEval('final', 12).result;
  const g = data(gainSpec(a, b)!);
  for (const d of g) {
    const x = a.withTools.byModalityQuestionType[d.row]?.[d.col];
    const y = b.withTools.byModalityQuestionType[d.row]?.[d.col];
    if (x && y) expect(d.value).toBeCloseTo(y.acc1 - x.acc1, 12);
    else expect(d.value).toBeNull();
  }
  const h = data(heatmapSpec({ title: 't', rows: ['r'], cols: ['a', 'b'], cells: [{ row: 'r', col: 'a', value: 0.5, n: 9, outlined: true }, { row: 'r', col: 'b', value: null, n: 0 }], rowTitle: 'r', colTitle: 'c' }));
  expect(h.map((d) => [d.outlined, d.few, d.label])).toEqual([[true, false, '0.50\nn=9'], [false, false, '–\nn=0']]);
});

test('a run trained on a subset labels modalities seen/unseen in its heatmaps', () => {
  const run: RunFiles = { dir: '.', config: { env: { trainModalities: ['ct', 'mri'] } }, metrics: [], evalSft: fakeEval('sft', 5).result, evalFinal: fakeEval('final', 6).result };
  const label = modalityLabel(run);
  expect([label('ct'), label('oct')]).toEqual(['ct (seen)', 'oct (unseen)']);
  const specs = chartSpecs(run);
  expect(Object.keys(specs)).toEqual(expect.arrayContaining(['cells_sft', 'cells_final', 'cells_gain']));
  const rows = new Set(data((specs.cells_final.hconcat as Record<string, unknown>[])[0]).map((d) => d.row));
  for (const r of rows) expect(r).toMatch(/^(ct|mri) \(seen\)$|^(?!ct |mri ).+ \(unseen\)$/);
  // No labels without a subset.
  expect(modalityLabel({ ...run, config: {} })('oct')).toBe('oct');
});
