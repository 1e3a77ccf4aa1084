// End to end through the CLI (child processes, as a user runs it; vega/vega-lite are ESM-only and
// need a real Node loader): `medgym train` on the tiny preset writes every artifact; a run stopped
// after a few steps and resumed gives the same metrics, bit for bit, as one uninterrupted run;
// non-finite steps are skipped, repeated ones stop the run with the last checkpoint intact;
// `medgym eval` and `medgym report` work alone.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.resolve(__dirname, '../..');
const TSX = path.join(ROOT, 'node_modules/.bin/tsx');
const CLI = path.join(ROOT, 'src/cli/main.ts');
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-e2e-'));

const CONFIG = {
  policy: { preset: 'tiny' },
  threads: 1,
  sft: { steps: 4, batchSize: 4, demoPool: 8, noToolShare: 0.25, noisyShare: 0.25, warmup: 1 },
  grpo: { steps: 3, promptsPerStep: 2, groupSize: 4, epochs: 2, miniBatches: 2, microBatchSize: 3, warmup: 1, loss: { beta: 0.02 } },
  eval: { items: 3, samples: 4 },
  checkpointEvery: 2,
  progress: false,
};
const cfgFile = path.join(TMP, 'config.yaml');
fs.writeFileSync(cfgFile, JSON.stringify(CONFIG)); // JSON is YAML

function medgym(...args: string[]): { status: number | null; stderr: string; stdout: string } {
  const r = spawnSync(TSX, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 240_000 });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}
const lines = (f: string): Record<string, unknown>[] => fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
/** Metrics without wall-clock fields. */
const stable = (f: string): unknown[] => lines(f).map((x) => Object.fromEntries(Object.entries(x).filter(([k]) => k !== 'time' && !k.endsWith('Seconds'))));

afterAll(() => fs.rmSync(TMP, { recursive: true, force: true }));

test('train writes every artifact; stop + resume reproduces the uninterrupted run; eval and report run alone', () => {
  const A = path.join(TMP, 'A');
  const a = medgym('train', '--config', cfgFile, '--out', A);
  expect(a.stderr).toMatch(/medgym train — config/);
  expect(a.status).toBe(0);
  for (const f of ['config.json', 'metrics.jsonl', 'trajectories.jsonl', 'eval_sft.json', 'eval_final.json', 'eval_control.json', 'sft.safetensors', 'sft.optimizer.safetensors', 'final.safetensors', 'control.safetensors', 'checkpoints/latest.json', 'report.md', 'report.html']) {
    expect(fs.existsSync(path.join(A, f))).toBe(true);
  }
  for (const c of ['sft_loss', 'grpo_metrics', 'pass_at_k', 'acc1']) {
    expect(fs.readFileSync(path.join(A, 'report', `${c}.svg`), 'utf8')).toMatch(/^<svg/);
    expect(fs.readFileSync(path.join(A, 'report', `${c}.png`)).subarray(1, 4).toString()).toBe('PNG');
  }
  expect(fs.readFileSync(path.join(A, 'report.html'), 'utf8')).toMatch(/<svg/);
  expect(fs.readFileSync(path.join(A, 'report.md'), 'utf8')).toMatch(/Pass@4/);
  expect(fs.readFileSync(path.join(A, 'report.md'), 'utf8')).toMatch(/\| SFT continued \(control\) \| yes \|/);

  const m = lines(path.join(A, 'metrics.jsonl'));
  const sft = m.filter((x) => x.phase === 'sft');
  const grpo = m.filter((x) => x.phase === 'grpo');
  expect(sft).toHaveLength(4);
  expect(grpo).toHaveLength(3);
  for (const x of sft) expect(Number.isFinite(x.loss)).toBe(true);
  // The control: SFT continued from the SFT policy, at the rate SFT ended with, for GRPO's wall time.
  const control = m.filter((x) => x.phase === 'control');
  expect(control.length).toBeGreaterThan(0);
  for (const x of control) expect(x.lr).toBeCloseTo(sft[sft.length - 1].lr as number, 12);
  for (const x of grpo) {
    for (const k of ['loss', 'reward', 'entropy', 'approxKl', 'kl', 'clipFrac', 'gradNorm']) expect(Number.isFinite(x[k])).toBe(true);
    expect(x.updates).toBe(4); // 2 epochs × 2 mini-batches
    expect(x.numGroups).toBe(2);
  }
  // Trajectories: ids kept, mask 1 only on sampled tokens, 8 per step.
  const trajs = lines(path.join(A, 'trajectories.jsonl'));
  expect(trajs).toHaveLength(3 * 8);
  for (const t of trajs) {
    const tokens = t.tokens as number[];
    const mask = t.mask as number[];
    expect(mask).toHaveLength(tokens.length);
    expect(mask.slice(0, t.promptTokens as number).every((v) => v === 0)).toBe(true);
  }
  const ev = JSON.parse(fs.readFileSync(path.join(A, 'eval_final.json'), 'utf8'));
  expect(ev.withTools.passAtK).toHaveLength(4);
  expect(ev.withoutTools.passAtK).toHaveLength(4);
  expect(Object.values(ev.withTools.byModality).reduce((s: number, g) => s + (g as { items: number }).items, 0)).toBe(3);

  // Stop after 5 steps (4 SFT + 1 GRPO), as Ctrl-C does, then resume: identical metrics and evals.
  const B = path.join(TMP, 'B');
  const b1 = medgym('train', '--config', cfgFile, '--out', B, '--stop-after', '5', '--no-report');
  expect(b1.status).toBe(130);
  expect(b1.stderr).toMatch(/stopped at grpo step 1/);
  expect(fs.existsSync(path.join(B, 'eval_final.json'))).toBe(false);
  const b2 = medgym('train', '--out', B, '--resume', '--no-report');
  expect(b2.status).toBe(0);
  expect(b2.stderr).toMatch(/resuming .* at grpo step 1/);
  // The control runs for a wall-clock budget, so its step count may differ; everything else is bit-exact.
  const noControl = (f: string): unknown[] => stable(f).filter((x) => (x as { phase: string }).phase !== 'control');
  expect(noControl(path.join(B, 'metrics.jsonl'))).toEqual(noControl(path.join(A, 'metrics.jsonl')));
  expect(fs.readFileSync(path.join(B, 'trajectories.jsonl'), 'utf8')).toBe(fs.readFileSync(path.join(A, 'trajectories.jsonl'), 'utf8'));
  expect(fs.readFileSync(path.join(B, 'eval_final.json'), 'utf8')).toBe(fs.readFileSync(path.join(A, 'eval_final.json'), 'utf8'));

  // eval and report alone
  const e = medgym('eval', '--checkpoint', path.join(A, 'final.safetensors'), '--items', '2', '--samples', '2', '--no-tools');
  expect(e.status).toBe(0);
  const er = JSON.parse(e.stdout);
  expect(er.items).toBe(2);
  expect(er.withTools.passAtK).toHaveLength(2);
  expect(er.withoutTools).toBeUndefined();
  const r = medgym('report', B);
  expect(r.status).toBe(0);
  expect(fs.existsSync(path.join(B, 'report', 'pass_at_k.png'))).toBe(true);
}, 600_000);

test('a non-finite step is skipped and logged; repeated ones stop the run with the last checkpoint intact', () => {
  const C = path.join(TMP, 'C');
  const cfg = { ...CONFIG, grpo: { ...CONFIG.grpo, steps: 4 }, maxBadSteps: 2, injectNan: ['sft:1', 'grpo:2', 'grpo:3'], eval: { items: 1, samples: 2, withoutTools: false, afterSft: false } };
  const f = path.join(TMP, 'nan.json');
  fs.writeFileSync(f, JSON.stringify(cfg));
  const c = medgym('train', '--config', f, '--out', C, '--no-report');
  expect(c.status).toBe(1);
  expect(c.stderr).toMatch(/2 consecutive non-finite grpo steps/);
  expect(c.stderr).toMatch(/last good checkpoint is intact/);
  const m = lines(path.join(C, 'metrics.jsonl'));
  expect(m.filter((x) => x.skipped).map((x) => `${x.phase}:${x.step}`)).toEqual(['sft:1', 'grpo:2', 'grpo:3']);
  expect(m.filter((x) => x.phase === 'sft' && !x.skipped)).toHaveLength(3);
  const latest = JSON.parse(fs.readFileSync(path.join(C, 'checkpoints/latest.json'), 'utf8'));
  expect(latest.state.phase).toBe('grpo');
  expect(latest.state.step).toBe(2);
  expect(fs.existsSync(path.join(C, latest.dir, 'policy.safetensors'))).toBe(true);
}, 240_000);
