// `medgym report` and `medgym matrix` through the CLI (child processes: vega and vega-lite are
// ESM-only and need a real Node loader) on fake run directories with a per-cell eval breakdown,
// a training subset of modalities and recorded GRPO episodes.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { writeFakeRun } from './fake_run';

const ROOT = path.resolve(__dirname, '../..');
const TSX = path.join(ROOT, 'node_modules/.bin/tsx');
const CLI = path.join(ROOT, 'src/cli/main.ts');
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-report-'));
afterAll(() => fs.rmSync(TMP, { recursive: true, force: true }));

const medgym = (...args: string[]) => spawnSync(TSX, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
const isSvg = (f: string): boolean => fs.readFileSync(f, 'utf8').startsWith('<svg');
const isPng = (f: string): boolean => fs.readFileSync(f).subarray(1, 4).toString() === 'PNG';

test('report: heatmaps, seen/unseen, example trajectories with their views; matrix from two runs', async () => {
  const A = path.join(TMP, 'A');
  const B = path.join(TMP, 'B');
  await writeFakeRun(A, ['ct', 'mri', 'xray'], 1);
  await writeFakeRun(B, undefined, 2);

  const r = medgym('report', A);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  for (const c of ['cells_sft', 'cells_final', 'cells_gain', 'pass_at_k', 'pass_at_k_by_modality', 'pass_at_k_by_question_type']) {
    expect(isSvg(path.join(A, 'report', `${c}.svg`))).toBe(true);
    expect(isPng(path.join(A, 'report', `${c}.png`))).toBe(true);
  }
  const md = fs.readFileSync(path.join(A, 'report.md'), 'utf8');
  expect(md).toMatch(/## Modality × question type/);
  expect(md).toMatch(/Trained on ct, mri, xray only/);
  expect(md).toMatch(/\| ct \| seen \|/);
  expect(md).toMatch(/\| oct \| unseen \|/);
  // Two logged steps × (one right with a zoom, one wrong): four examples, all replayed faithfully.
  expect(md).not.toMatch(/Replay diverged/);
  for (let i = 1; i <= 4; i++) {
    expect(md).toContain(`![example_${i}](report/example_${i}.png)`);
    expect(isPng(path.join(A, 'report', `example_${i}.png`))).toBe(true);
  }
  expect(md).toMatch(/### GRPO step 0: correct, with a zoom/);
  expect(md).toMatch(/### GRPO step 1: wrong, with a tool call/);
  expect(md).not.toMatch(/\x01/);
  expect(md).toContain('\\x01<tool_call>');
  const html = fs.readFileSync(path.join(A, 'report.html'), 'utf8');
  expect((html.match(/<img alt="example_\d" [^>]*src="data:image\/png;base64,/g) ?? []).length).toBe(4);
  expect(html).toMatch(/<figure id="cells_final"><svg/);
  expect(html).toMatch(/<pre>&lt;tool_call&gt;/);

  const out = path.join(TMP, 'matrix');
  const m = medgym('matrix', A, B, '-o', out);
  expect(m.stderr).toBe('');
  expect(m.status).toBe(0);
  expect(isSvg(path.join(out, 'matrix.svg'))).toBe(true);
  expect(isPng(path.join(out, 'matrix.png'))).toBe(true);
  const table = fs.readFileSync(path.join(out, 'matrix.md'), 'utf8');
  expect(table).toMatch(/^\| ct\+mri\+xray \|/m);
  expect(table).toMatch(/^\| all \|/m);
  expect(JSON.parse(fs.readFileSync(path.join(out, 'matrix.json'), 'utf8')).rows).toHaveLength(2);

  const bad = medgym('matrix', A, '--eval', 'best', '-o', out);
  expect(bad.status).not.toBe(0);
  expect(bad.stderr).toMatch(/--eval final or sft/);
});
