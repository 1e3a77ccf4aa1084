// Report from a run directory's files (metrics.jsonl, eval_*.json, config.json, trajectories.jsonl):
// report.md and report.html with plots as SVG and PNG (render.ts: vega-lite → vega View.toSVG, no
// browser → sharp PNG), the modality × question-type heatmaps (heatmap.ts), seen/unseen modalities
// of a run trained on a subset (env.trainModalities), and example trajectories with their views
// (examples.ts).
import * as fs from 'fs';
import * as path from 'path';
import type { EvalResult, EvalModeResult } from '../eval';
import { envModalities } from '../train/envs';
import { cellAxes, cellsSpec, gainSpec } from './heatmap';
import { writeExamples } from './examples';
import { renderChart } from './render';
import { dataLines } from './data_section';

export { renderChart } from './render';
export { heatmapSpec, cellsSpec, gainSpec, cellAxes, modeCells, diffCells, cellLabel, MIN_ITEMS } from './heatmap';
export type { HeatCell, HeatmapOptions } from './heatmap';
export { assembleMatrix, matrixSpec, matrixMarkdown, writeMatrix } from './matrix';
export type { Matrix, MatrixRow, MatrixOptions } from './matrix';
export { replayEpisode, examplePng, pickExamples, firstAndLastStep, trainingEnv, policyDims, writeExamples } from './examples';
export type { Replay, TrajectoryRow, Example } from './examples';

type Row = Record<string, unknown>;

export interface RunFiles {
  dir: string;
  config: Row;
  metrics: Row[];
  evalSft?: EvalResult;
  evalFinal?: EvalResult;
  /** The control: SFT continued for GRPO's wall time. */
  evalControl?: EvalResult;
}

export function readRun(dir: string): RunFiles {
  const p = (f: string): string => path.join(dir, f);
  if (!fs.existsSync(p('metrics.jsonl'))) throw new Error(`${dir} is not a medgym run directory (no metrics.jsonl)`);
  const json = <T>(f: string): T | undefined => (fs.existsSync(p(f)) ? (JSON.parse(fs.readFileSync(p(f), 'utf8')) as T) : undefined);
  const metrics = fs.readFileSync(p('metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Row);
  return { dir, config: json<Row>('config.json') ?? {}, metrics, evalSft: json<EvalResult>('eval_sft.json'), evalFinal: json<EvalResult>('eval_final.json'), evalControl: json<EvalResult>('eval_control.json') };
}

/** Modalities the run trained on when `env.trainModalities` restricted them; undefined: all. */
export function trainedModalities(run: RunFiles): string[] | undefined {
  return (run.config as { env?: { trainModalities?: string[] } }).env?.trainModalities;
}

/** Row label of a modality: marked seen/unseen when the run trained on a subset. */
export function modalityLabel(run: RunFiles): (m: string) => string {
  const train = trainedModalities(run);
  return train ? (m) => `${m} (${train.includes(m) ? 'seen' : 'unseen'})` : (m) => m;
}

const GRPO_SERIES: [string, string][] = [
  ['reward', 'reward'], ['accuracy', 'accuracy (sampled)'], ['formatRate', 'format rate'], ['toolCallsPerEpisode', 'tool calls / episode'], ['zoomHit', 'zoom on the finding'],
  ['entropy', 'entropy'], ['approxKl', 'KL to sampler (approx)'], ['kl', 'KL to reference'], ['clipFrac', 'clip fraction'], ['equalRewardGroups', 'equal-reward groups'],
];

/** The vega-lite specs of a run (name → spec); charts without data are left out. */
export function chartSpecs(run: RunFiles): Record<string, Row> {
  const specs: Record<string, Row> = {};
  const sft = run.metrics.filter((m) => m.phase === 'sft' && !m.skipped);
  if (sft.length) {
    specs.sft_loss = { title: 'SFT loss (assistant tokens)', width: 420, height: 180, data: { values: sft.map((m) => ({ step: m.step, loss: m.loss })) }, mark: 'line', encoding: { x: { field: 'step', type: 'quantitative' }, y: { field: 'loss', type: 'quantitative', scale: { zero: false } } } };
  }
  const grpo = run.metrics.filter((m) => m.phase === 'grpo' && !m.skipped);
  const long = grpo.flatMap((m) => GRPO_SERIES.filter(([k]) => typeof m[k] === 'number' && Number.isFinite(m[k] as number)).map(([k, label]) => ({ step: m.step, metric: label, value: m[k] })));
  if (long.length) {
    specs.grpo_metrics = {
      title: 'GRPO, per step',
      data: { values: long },
      facet: { field: 'metric', type: 'nominal', title: null },
      columns: 3,
      spec: { width: 220, height: 120, mark: { type: 'line', point: grpo.length < 30 }, encoding: { x: { field: 'step', type: 'quantitative' }, y: { field: 'value', type: 'quantitative', title: null, scale: { zero: false } } } },
      resolve: { scale: { y: 'independent' } },
    };
  }
  const evals = [run.evalSft, run.evalFinal, run.evalControl].filter((e): e is EvalResult => e !== undefined);
  const modes = (e: EvalResult): [string, EvalModeResult][] => [['with tools', e.withTools] as [string, EvalModeResult], ...(e.withoutTools ? [['without tools', e.withoutTools] as [string, EvalModeResult]] : [])];
  const label = (e: EvalResult): string => (e === run.evalSft ? 'SFT' : e === run.evalControl ? 'SFT continued (control)' : 'SFT+GRPO');
  if (evals.length) {
    specs.pass_at_k = {
      title: 'Pass@K (unbiased), held-out items',
      width: 420, height: 220,
      data: { values: evals.flatMap((e) => modes(e).flatMap(([mode, r]) => r.passAtK.map((v, k) => ({ K: k + 1, pass: v, policy: label(e), mode })))) },
      mark: { type: 'line', point: true },
      encoding: { x: { field: 'K', type: 'quantitative', scale: { type: 'log', base: 2 } }, y: { field: 'pass', type: 'quantitative', scale: { domain: [0, 1] }, title: 'Pass@K' }, color: { field: 'policy', type: 'nominal' }, strokeDash: { field: 'mode', type: 'nominal' } },
    };
    specs.acc1 = {
      title: 'Acc@1 (greedy), held-out items',
      width: 200, height: 200,
      data: { values: evals.flatMap((e) => modes(e).map(([mode, r]) => ({ policy: label(e), mode, acc1: r.acc1 }))) },
      mark: 'bar',
      encoding: { x: { field: 'policy', type: 'nominal', title: null }, xOffset: { field: 'mode' }, y: { field: 'acc1', type: 'quantitative', scale: { domain: [0, 1] }, title: 'Acc@1' }, color: { field: 'mode', type: 'nominal' } },
    };
    const mlabel = modalityLabel(run);
    for (const [key, title, name, lab] of [['byModality', 'modality', 'pass_at_k_by_modality', mlabel], ['byQuestionType', 'question type', 'pass_at_k_by_question_type', (q: string) => q]] as const) {
      specs[name] = {
        title: `Pass@K (unbiased) by ${title}, held-out items`,
        data: { values: evals.flatMap((e) => modes(e).flatMap(([mode, r]) => Object.entries(r[key]).flatMap(([g, x]) => x.passAtK.map((v, k) => ({ K: k + 1, pass: v, policy: label(e), mode, group: `${lab(g)} (n=${x.items})` }))))) },
        facet: { field: 'group', type: 'nominal', title: null },
        columns: 4,
        spec: {
          width: 150, height: 110,
          mark: { type: 'line', point: false },
          encoding: { x: { field: 'K', type: 'quantitative', scale: { type: 'log', base: 2 } }, y: { field: 'pass', type: 'quantitative', scale: { domain: [0, 1] }, title: 'Pass@K' }, color: { field: 'policy', type: 'nominal' }, strokeDash: { field: 'mode', type: 'nominal' } },
        },
      };
    }
    // Modality × question type (Med-R1): the same rows and columns for both policies.
    const axes = cellAxes(evals);
    for (const e of evals.filter((x) => x !== run.evalControl)) {
      const c = cellsSpec(label(e), e, mlabel, axes);
      if (c) specs[e === run.evalSft ? 'cells_sft' : 'cells_final'] = c;
    }
    const gain = run.evalSft && run.evalFinal ? gainSpec(run.evalSft, run.evalFinal, mlabel) : undefined;
    if (gain) specs.cells_gain = gain;
  }
  return specs;
}

const f3 = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(3));

/** Item-weighted Acc@1 over the given modalities of one eval mode (null: no items). */
function acc1Over(r: EvalModeResult, ms: string[]): { acc1: number | null; items: number } {
  const gs = ms.map((m) => r.byModality[m]).filter((g) => g !== undefined);
  const items = gs.reduce((s, g) => s + g.items, 0);
  return { acc1: items ? gs.reduce((s, g) => s + g.acc1 * g.items, 0) / items : null, items };
}

function evalTables(run: RunFiles): string[] {
  const out: string[] = [];
  const evals: [string, EvalResult | undefined][] = [['SFT', run.evalSft], ['SFT+GRPO', run.evalFinal], ['SFT continued (control)', run.evalControl]];
  const present = evals.filter((e): e is [string, EvalResult] => e[1] !== undefined);
  if (!present.length) return ['_No evaluation yet._'];
  const e0 = present[0][1];
  const ks = [1, 2, 4, 8, 16].filter((k) => k <= e0.samples);
  const train = trainedModalities(run);
  out.push(`Held-out items: ${e0.items} (eval index range), ${e0.samples} samples per item at τ = ${e0.temperature}.`, '');
  out.push(`| policy | tools | Acc@1 | ${ks.map((k) => `Pass@${k}`).join(' | ')} | sampled acc | format | tool calls/ep | no-tool share | zoom on finding |`);
  out.push(`|---|---|---|${ks.map(() => '---').join('|')}|---|---|---|---|---|`);
  for (const [name, e] of present) {
    for (const [mode, r] of [['yes', e.withTools], ['no', e.withoutTools]] as [string, EvalModeResult | undefined][]) {
      if (!r) continue;
      out.push(`| ${name} | ${mode} | ${f3(r.acc1)} | ${ks.map((k) => f3(r.passAtK[k - 1])).join(' | ')} | ${f3(r.sampledAccuracy)} | ${f3(r.formatRate)} | ${f3(r.toolCallsPerEpisode)} | ${f3(r.noToolShare)} | ${f3(r.zoomHit ?? undefined)} |`);
    }
  }
  if (train) {
    const all = Object.keys(e0.withTools.byModality);
    const seen = all.filter((m) => train.includes(m));
    const unseen = all.filter((m) => !train.includes(m));
    const cfgId = (run.config as { env?: { id?: string } }).env?.id ?? 'MedVista-Synth-v0';
    out.push(
      '',
      `Trained on ${train.join(', ')} only (\`env.trainModalities\`: SFT demonstrations and GRPO prompts); evaluated on every modality of the env${envModalities(cfgId) ? ` (${envModalities(cfgId)!.join(', ')})` : ''}. Acc@1 over seen and unseen modalities (item-weighted):`,
      '',
      '| policy | tools | seen | seen items | unseen | unseen items |',
      '|---|---|---|---|---|---|',
    );
    for (const [name, e] of present) {
      for (const [mode, r] of [['yes', e.withTools], ['no', e.withoutTools]] as [string, EvalModeResult | undefined][]) {
        if (!r) continue;
        const a = acc1Over(r, seen);
        const b = acc1Over(r, unseen);
        out.push(`| ${name} | ${mode} | ${f3(a.acc1 ?? undefined)} | ${a.items} | ${f3(b.acc1 ?? undefined)} | ${b.items} |`);
      }
    }
  }
  for (const [title, key] of [['modality', 'byModality'], ['question type', 'byQuestionType']] as const) {
    const trainCol = train && key === 'byModality';
    out.push(
      '',
      `Acc@1 / Pass@${e0.samples} with tools by ${title}:`,
      '',
      `| ${title} | ${trainCol ? 'training | ' : ''}items | ${present.map(([n]) => `${n} Acc@1 | ${n} Pass@${e0.samples}`).join(' | ')} |`,
      `|---|${trainCol ? '---|' : ''}---|${present.map(() => '---|---').join('|')}|`,
    );
    for (const g of Object.keys(e0.withTools[key])) {
      out.push(`| ${g} | ${trainCol ? `${train.includes(g) ? 'seen' : 'unseen'} | ` : ''}${e0.withTools[key][g].items} | ${present.map(([, e]) => `${f3(e.withTools[key][g]?.acc1)} | ${f3(e.withTools[key][g]?.passAtK[e.samples - 1])}`).join(' | ')} |`);
    }
  }
  return out;
}

const image = (n: string): string => `![${n}](report/${n}.png) ([svg](report/${n}.svg))`;

/** Writes <run>/report/{*.svg,*.png} and <run>/report.md, <run>/report.html. */
export async function writeReport(dir: string): Promise<{ markdown: string; html: string; charts: string[]; examples: string[] }> {
  const run = readRun(dir);
  const rdir = path.join(dir, 'report');
  fs.mkdirSync(rdir, { recursive: true });
  const specs = chartSpecs(run);
  const svgs: Record<string, string> = {};
  for (const [name, spec] of Object.entries(specs)) {
    const { svg, png } = await renderChart(spec);
    fs.writeFileSync(path.join(rdir, `${name}.svg`), svg);
    fs.writeFileSync(path.join(rdir, `${name}.png`), png);
    svgs[name] = svg;
  }
  const examples = await writeExamples(dir, run.config, rdir);
  const sft = run.metrics.filter((m) => m.phase === 'sft' && !m.skipped);
  const grpo = run.metrics.filter((m) => m.phase === 'grpo' && !m.skipped);
  const control = run.metrics.filter((m) => m.phase === 'control' && !m.skipped);
  const skipped = run.metrics.filter((m) => m.skipped);
  const last = (xs: Row[], k: string): string => f3(xs.length ? (xs[xs.length - 1][k] as number) : undefined);
  const mean = (xs: Row[], k: string): number => xs.reduce((s, m) => s + (Number(m[k]) || 0), 0) / Math.max(1, xs.length);
  const cfg = run.config as { policy?: { preset?: string }; seed?: number; env?: { id?: string } };
  const cells = Object.keys(specs).filter((n) => n.startsWith('cells_'));
  const plots = Object.keys(specs).filter((n) => !n.startsWith('cells_'));
  const lines = [
    `# medgym train report`,
    '',
    `Run: \`${path.resolve(dir)}\` — env ${cfg.env?.id ?? '?'}, policy preset ${cfg.policy?.preset ?? '?'}, seed ${cfg.seed ?? '?'}.`,
    '',
    `- SFT: ${sft.length} steps, final loss ${last(sft, 'loss')}.`,
    `- GRPO: ${grpo.length} steps; mean reward ${f3(mean(grpo, 'reward'))} (first ${last(grpo.slice(0, 1), 'reward')}, last ${last(grpo, 'reward')}); equal-reward groups ${f3(mean(grpo, 'equalRewardGroups'))} per step of ${last(grpo, 'numGroups')}; mean clip fraction ${f3(mean(grpo, 'clipFrac'))}.`,
    ...(control.length ? [`- Control: the SFT policy trained further by SFT on the same demo pool for GRPO's wall time: ${control.length} steps, final loss ${last(control, 'loss')}.`] : []),
    `- Skipped (non-finite) steps: ${skipped.length}.`,
    '',
    ...dataLines(dir),
    '## Evaluation',
    '',
    ...evalTables(run),
    '',
    '## Modality × question type',
    '',
    ...(cells.length
      ? ['Held-out Acc@1 (greedy) per cell, with tools, without tools and their difference; each label gives the cell\'s item count (n), faded cells have fewer than 5 items: read them as anecdotes.', '', ...cells.flatMap((n) => [image(n), ''])]
      : ['_No per-cell breakdown in the eval files (evaluations older than this report)._', '']),
    '## Plots',
    '',
    ...plots.flatMap((n) => [image(n), '']),
    '## Example trajectories',
    '',
    ...examples.lines,
  ];
  const markdown = path.join(dir, 'report.md');
  fs.writeFileSync(markdown, lines.join('\n') + '\n');
  const html = path.join(dir, 'report.html');
  fs.writeFileSync(html, toHtml(lines, svgs, examples.pngs));
  return { markdown, html, charts: Object.keys(specs), examples: Object.keys(examples.pngs) };
}

const escapeHtml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * A minimal markdown → HTML for the report's own lines (headings, lists, tables, code fences,
 * images): charts inline as SVG, example PNGs inline as data URIs, so the page stands alone.
 */
export function toHtml(lines: string[], svgs: Record<string, string>, pngs: Record<string, Uint8Array> = {}): string {
  const body: string[] = [];
  let table: string[][] = [];
  let code: string[] | undefined;
  let fence = '';
  const flush = (): void => {
    if (!table.length) return;
    body.push('<table>' + table.map((r, i) => `<tr>${r.map((c) => (i === 0 ? `<th>${c}</th>` : `<td>${c}</td>`)).join('')}</tr>`).join('') + '</table>');
    table = [];
  };
  const inline = (s: string): string => escapeHtml(s).replace(/`([^`]+)`/g, '<code>$1</code>').replace(/\*\*([^*]+)\*\*/g, '<b>$1</b>');
  for (const raw of lines) {
    if (code) {
      if (raw === fence) {
        body.push(`<pre>${code.map(escapeHtml).join('\n')}</pre>`);
        code = undefined;
      } else code.push(raw);
      continue;
    }
    if (raw === '```' || raw === '~~~~') {
      flush();
      fence = raw;
      code = [];
      continue;
    }
    const img = /^!\[([\w-]+)\]\(/.exec(raw);
    if (img) {
      flush();
      const n = img[1];
      if (svgs[n]) body.push(`<figure id="${n}">${svgs[n]}</figure>`);
      else if (pngs[n]) body.push(`<figure id="${n}"><img alt="${n}" style="image-rendering:pixelated" src="data:image/png;base64,${Buffer.from(pngs[n].buffer, pngs[n].byteOffset, pngs[n].byteLength).toString('base64')}"></figure>`);
      continue;
    }
    const l = inline(raw);
    if (l.startsWith('|')) {
      if (!/^\|[-|]+\|$/.test(l)) table.push(l.slice(1, -1).split('|').map((c) => c.trim()));
      continue;
    }
    flush();
    if (l.startsWith('### ')) body.push(`<h3>${l.slice(4)}</h3>`);
    else if (l.startsWith('## ')) body.push(`<h2>${l.slice(3)}</h2>`);
    else if (l.startsWith('# ')) body.push(`<h1>${l.slice(2)}</h1>`);
    else if (l.startsWith('- ')) body.push(`<li>${l.slice(2)}</li>`);
    else if (l.trim()) body.push(`<p>${l}</p>`);
  }
  flush();
  if (code) body.push(`<pre>${code.map(escapeHtml).join('\n')}</pre>`);
  return `<!doctype html>\n<html><head><meta charset="utf-8"><title>medgym train report</title><style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}pre{background:#f6f6f6;padding:.5em;white-space:pre-wrap}</style></head><body>\n${body.join('\n')}\n</body></html>\n`;
}
