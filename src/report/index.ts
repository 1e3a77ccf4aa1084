// Report from a run directory's files (metrics.jsonl, eval_*.json, config.json): report.md and
// report.html with plots as SVG and PNG. vega-lite compiles the specs, vega renders SVG headlessly
// (View.toSVG, no browser), sharp rasterizes the SVG to PNG.
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import type { EvalResult, EvalModeResult } from '../eval';

type Row = Record<string, unknown>;
const esmImport = new Function('m', 'return import(m)') as (m: string) => Promise<unknown>;

export interface RunFiles {
  dir: string;
  config: Row;
  metrics: Row[];
  evalSft?: EvalResult;
  evalFinal?: EvalResult;
}

export function readRun(dir: string): RunFiles {
  const p = (f: string): string => path.join(dir, f);
  if (!fs.existsSync(p('metrics.jsonl'))) throw new Error(`${dir} is not a medgym run directory (no metrics.jsonl)`);
  const json = <T>(f: string): T | undefined => (fs.existsSync(p(f)) ? (JSON.parse(fs.readFileSync(p(f), 'utf8')) as T) : undefined);
  const metrics = fs.readFileSync(p('metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Row);
  return { dir, config: json<Row>('config.json') ?? {}, metrics, evalSft: json<EvalResult>('eval_sft.json'), evalFinal: json<EvalResult>('eval_final.json') };
}

const GRPO_SERIES: [string, string][] = [
  ['reward', 'reward'], ['accuracy', 'accuracy (sampled)'], ['formatRate', 'format rate'], ['toolCallsPerEpisode', 'tool calls / episode'],
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
  const evals = [run.evalSft, run.evalFinal].filter((e): e is EvalResult => e !== undefined);
  const modes = (e: EvalResult): [string, EvalModeResult][] => [['with tools', e.withTools] as [string, EvalModeResult], ...(e.withoutTools ? [['without tools', e.withoutTools] as [string, EvalModeResult]] : [])];
  const label = (e: EvalResult): string => (e === run.evalSft ? 'SFT' : 'SFT+GRPO');
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
  }
  return specs;
}

/** Renders a vega-lite spec to SVG (headless vega View) and PNG (sharp). */
export async function renderChart(spec: Row): Promise<{ svg: string; png: Buffer }> {
  const vl = (await esmImport('vega-lite')) as { compile(s: unknown): { spec: unknown } };
  const vega = (await esmImport('vega')) as { parse(s: unknown): unknown; View: new (rt: unknown, o: { renderer: string }) => { toSVG(): Promise<string>; finalize(): void } };
  const view = new vega.View(vega.parse(vl.compile({ $schema: 'https://vega.github.io/schema/vega-lite/v6.json', background: 'white', ...spec }).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  const png = await sharp(Buffer.from(svg), { density: 144 }).png().toBuffer();
  return { svg, png };
}

const f3 = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(3));

function evalTables(run: RunFiles): string[] {
  const out: string[] = [];
  const evals: [string, EvalResult | undefined][] = [['SFT', run.evalSft], ['SFT+GRPO', run.evalFinal]];
  const present = evals.filter((e): e is [string, EvalResult] => e[1] !== undefined);
  if (!present.length) return ['_No evaluation yet._'];
  const e0 = present[0][1];
  const ks = [1, 2, 4, 8, 16].filter((k) => k <= e0.samples);
  out.push(`Held-out items: ${e0.items} (eval index range), ${e0.samples} samples per item at τ = ${e0.temperature}.`, '');
  out.push(`| policy | tools | Acc@1 | ${ks.map((k) => `Pass@${k}`).join(' | ')} | sampled acc | format | tool calls/ep | no-tool share |`);
  out.push(`|---|---|---|${ks.map(() => '---').join('|')}|---|---|---|---|`);
  for (const [name, e] of present) {
    for (const [mode, r] of [['yes', e.withTools], ['no', e.withoutTools]] as [string, EvalModeResult | undefined][]) {
      if (!r) continue;
      out.push(`| ${name} | ${mode} | ${f3(r.acc1)} | ${ks.map((k) => f3(r.passAtK[k - 1])).join(' | ')} | ${f3(r.sampledAccuracy)} | ${f3(r.formatRate)} | ${f3(r.toolCallsPerEpisode)} | ${f3(r.noToolShare)} |`);
    }
  }
  for (const [title, key] of [['modality', 'byModality'], ['question type', 'byQuestionType']] as const) {
    out.push('', `Acc@1 / Pass@${e0.samples} with tools by ${title}:`, '', `| ${title} | items | ${present.map(([n]) => `${n} Acc@1 | ${n} Pass@${e0.samples}`).join(' | ')} |`, `|---|---|${present.map(() => '---|---').join('|')}|`);
    for (const g of Object.keys(e0.withTools[key])) {
      out.push(`| ${g} | ${e0.withTools[key][g].items} | ${present.map(([, e]) => `${f3(e.withTools[key][g]?.acc1)} | ${f3(e.withTools[key][g]?.passAtK[e.samples - 1])}`).join(' | ')} |`);
    }
  }
  return out;
}

/** Writes <run>/report/{*.svg,*.png} and <run>/report.md, <run>/report.html. */
export async function writeReport(dir: string): Promise<{ markdown: string; html: string; charts: string[] }> {
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
  const sft = run.metrics.filter((m) => m.phase === 'sft' && !m.skipped);
  const grpo = run.metrics.filter((m) => m.phase === 'grpo' && !m.skipped);
  const skipped = run.metrics.filter((m) => m.skipped);
  const last = (xs: Row[], k: string): string => f3(xs.length ? (xs[xs.length - 1][k] as number) : undefined);
  const mean = (xs: Row[], k: string): number => xs.reduce((s, m) => s + (Number(m[k]) || 0), 0) / Math.max(1, xs.length);
  const cfg = run.config as { policy?: { preset?: string }; seed?: number; env?: { id?: string } };
  const lines = [
    `# medgym train report`,
    '',
    `Run: \`${path.resolve(dir)}\` — env ${cfg.env?.id ?? '?'}, policy preset ${cfg.policy?.preset ?? '?'}, seed ${cfg.seed ?? '?'}.`,
    '',
    `- SFT: ${sft.length} steps, final loss ${last(sft, 'loss')}.`,
    `- GRPO: ${grpo.length} steps; mean reward ${f3(mean(grpo, 'reward'))} (first ${last(grpo.slice(0, 1), 'reward')}, last ${last(grpo, 'reward')}); equal-reward groups ${f3(mean(grpo, 'equalRewardGroups'))} per step of ${last(grpo, 'numGroups')}; mean clip fraction ${f3(mean(grpo, 'clipFrac'))}.`,
    `- Skipped (non-finite) steps: ${skipped.length}.`,
    '',
    '## Evaluation',
    '',
    ...evalTables(run),
    '',
    '## Plots',
    '',
    ...Object.keys(specs).map((n) => `![${n}](report/${n}.png) ([svg](report/${n}.svg))\n`),
  ];
  const markdown = path.join(dir, 'report.md');
  fs.writeFileSync(markdown, lines.join('\n') + '\n');
  const html = path.join(dir, 'report.html');
  fs.writeFileSync(html, toHtml(lines.filter((l) => !l.startsWith('![')), svgs));
  return { markdown, html, charts: Object.keys(specs) };
}

const escapeHtml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A minimal markdown → HTML for the report's own lines (headings, lists, tables), with the SVGs inline. */
function toHtml(lines: string[], svgs: Record<string, string>): string {
  const body: string[] = [];
  let table: string[][] = [];
  const flush = (): void => {
    if (!table.length) return;
    body.push('<table>' + table.map((r, i) => `<tr>${r.map((c) => (i === 0 ? `<th>${c}</th>` : `<td>${c}</td>`)).join('')}</tr>`).join('') + '</table>');
    table = [];
  };
  for (const raw of lines) {
    const l = escapeHtml(raw).replace(/`([^`]+)`/g, '<code>$1</code>');
    if (l.startsWith('|')) {
      if (!/^\|[-|]+\|$/.test(l)) table.push(l.slice(1, -1).split('|').map((c) => c.trim()));
      continue;
    }
    flush();
    if (l.startsWith('## ')) body.push(`<h2>${l.slice(3)}</h2>`);
    else if (l.startsWith('# ')) body.push(`<h1>${l.slice(2)}</h1>`);
    else if (l.startsWith('- ')) body.push(`<li>${l.slice(2)}</li>`);
    else if (l.trim()) body.push(`<p>${l}</p>`);
  }
  flush();
  body.push(...Object.entries(svgs).map(([n, s]) => `<figure id="${n}">${s}</figure>`));
  return `<!doctype html>\n<html><head><meta charset="utf-8"><title>medgym train report</title><style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}</style></head><body>\n${body.join('\n')}\n</body></html>\n`;
}
