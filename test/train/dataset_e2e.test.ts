// A user's own files through the whole recipe, from the CLI as a user runs it: JSONL datasets of
// PNGs of mixed sizes, 16-bit PNGs, DICOM and NIfTI, and a MedMNIST .npz each run `medgym train`
// (SFT → GRPO → eval → report, a few steps) and `medgym eval` on the checkpoint; bad rows are named
// and skipped; a dataset smaller than the demo pool is refused before any work, saying how many
// items it has; a run resumed mid-GRPO on a dataset gives the uninterrupted run's metrics.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseTrainConfig, runTraining } from '../../src/train';
import { brightnessRows, dicomBytes, medmnistBytes, niftiBytes, pngBytes, writeJsonl } from '../helpers/datasets';

const ROOT = path.resolve(__dirname, '../..');
const TSX = path.join(ROOT, 'node_modules/.bin/tsx');
const CLI = path.join(ROOT, 'src/cli/main.ts');
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-data-e2e-'));
afterAll(() => fs.rmSync(TMP, { recursive: true, force: true }));

const SMALL = {
  policy: { preset: 'tiny' },
  threads: 1,
  sft: { steps: 3, batchSize: 4, demoPool: 4, warmup: 1 },
  grpo: { steps: 2, promptsPerStep: 2, groupSize: 2, warmup: 1 },
  eval: { items: 3, samples: 2 },
  control: false,
  checkpointEvery: 1,
  progress: false,
  // A few items: a larger test share than the default 10% (datasets with their own split ignore it).
  env: { dataset: { fractions: [0.6, 0, 0.4] } },
};
const cfgFile = path.join(TMP, 'small.json');
fs.writeFileSync(cfgFile, JSON.stringify(SMALL));

function medgym(...args: string[]): { status: number | null; stderr: string; stdout: string } {
  const r = spawnSync(TSX, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 180_000 });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}

/** A folder `name` with images made by `image(k, file)` and a data.jsonl of `n` rows over them. */
async function jsonlDataset(name: string, n: number, ext: string, image: (k: number) => Promise<Uint8Array> | Uint8Array, extraLines: string[] = []): Promise<string> {
  const dir = path.join(TMP, name);
  fs.mkdirSync(path.join(dir, 'img'), { recursive: true });
  for (let k = 0; k < n; k++) fs.writeFileSync(path.join(dir, 'img', `${k}.${ext}`), await image(k));
  return writeJsonl(dir, brightnessRows(n, (k) => `img/${k}.${ext}`, (k) => (k % 2 ? undefined : [8, 8, 24, 24])), extraLines);
}

/** `medgym train` then `medgym eval` on the result; returns the train stderr. */
function trainAndEval(dataset: string, out: string): string {
  const t = medgym('train', '--config', cfgFile, '--dataset', dataset, '--out', out);
  if (t.status !== 0) throw new Error(`medgym train failed (${t.status}):\n${t.stderr.slice(-3000)}`);
  for (const f of ['config.json', 'metrics.jsonl', 'eval_sft.json', 'eval_final.json', 'final.safetensors', 'report.md', 'report.html']) expect(fs.existsSync(path.join(out, f))).toBe(true);
  const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
  expect(cfg.env.id).toBe('MedGym-Dataset-v0');
  expect(cfg.env.dataset.resolved).toMatchObject({ path: path.resolve(dataset), sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
  const grpo = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((m) => m.phase === 'grpo');
  expect(grpo).toHaveLength(2);
  const e = medgym('eval', '--checkpoint', path.join(out, 'final.safetensors'), '--items', '2', '--samples', '2', '--no-tools');
  if (e.status !== 0) throw new Error(`medgym eval failed (${e.status}):\n${e.stderr.slice(-3000)}`);
  expect(JSON.parse(e.stdout)).toMatchObject({ items: 2, samples: 2 });
  return t.stderr;
}

const bright = (k: number) => (x: number, y: number) => (x >= 8 && x < 24 && y >= 8 && y < 24 ? [40, 128, 230][k % 3] : 20);

test('JSONL of PNGs of mixed sizes, with bad rows skipped and named', async () => {
  const sizes = [[64, 64], [96, 48], [40, 120], [33, 65]];
  const file = await jsonlDataset('png-mixed', 24, 'png', (k) => pngBytes(sizes[k % 4][0], sizes[k % 4][1], bright(k)), [
    '{"image": "img/0.png", "question": "broken', // malformed JSON
    JSON.stringify({ image: 'img/missing.png', question: 'q', options: ['a', 'b'], answer: 0 }),
    JSON.stringify({ image: 'img/1.png', question: 'q', options: ['a', 'b'], answer: 'c' }),
  ]);
  const err = trainAndEval(file, path.join(TMP, 'run-png'));
  expect(err).toMatch(/dataset .*data\.jsonl \(jsonl, 24 items/);
  expect(err).toMatch(/3 bad rows skipped \(first: .*data\.jsonl:25: /);
}, 180_000);

test('JSONL of 16-bit PNGs', async () => {
  const file = await jsonlDataset('png16', 16, 'png', (k) => pngBytes(48, 48, (x, y) => bright(k)(x, y) * 250, 16));
  trainAndEval(file, path.join(TMP, 'run-png16'));
}, 180_000);

test('JSONL of DICOM files', async () => {
  const file = await jsonlDataset('dicom', 16, 'dcm', (k) => dicomBytes(40, 40, (x, y) => bright(k)(x, y) * 4 - 400));
  trainAndEval(file, path.join(TMP, 'run-dicom'));
}, 180_000);

test('JSONL of NIfTI volumes', async () => {
  const file = await jsonlDataset('nifti', 16, 'nii', (k) => niftiBytes(32, 32, 3, (x, y) => bright(k)(x, y) * 4 - 400));
  trainAndEval(file, path.join(TMP, 'run-nifti'));
}, 180_000);

test('a MedMNIST .npz (its own train/test split)', () => {
  const file = path.join(TMP, 'octmnist.npz');
  fs.writeFileSync(file, medmnistBytes(12, 28));
  const err = trainAndEval(file, path.join(TMP, 'run-mnist'));
  expect(err).toMatch(/the dataset's own split: 12 train, 0 val, 12 test/);
}, 180_000);

test('a dataset smaller than the default demo pool is refused before any work, with the counts', async () => {
  const file = await jsonlDataset('tiny', 10, 'png', (k) => pngBytes(32, 32, bright(k)));
  const out = path.join(TMP, 'run-tiny');
  const r = medgym('train', '--dataset', file, '--out', out, '--no-progress');
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/env\.dataset: sft\.demoPool is 64 but .*data\.jsonl has \d+ train items usable as demonstrations \(\d+ with a box, \d+ answer-only\)/);
  expect(fs.existsSync(out)).toBe(false);
}, 60_000);

test('resume mid-GRPO on a dataset reproduces the uninterrupted run', async () => {
  const file = await jsonlDataset('resume', 16, 'png', (k) => pngBytes(40, 56, bright(k)));
  const cfg = (out: string, stopAfter = 0) => parseTrainConfig({ ...SMALL, env: { dataset: { ...SMALL.env.dataset, path: file } }, grpo: { ...SMALL.grpo, steps: 4 }, report: false, out, stopAfter });
  const quiet = { handleSigint: false, log: () => undefined };
  const A = path.join(TMP, 'resume-A');
  const B = path.join(TMP, 'resume-B');
  expect((await runTraining(cfg(A), quiet)).status).toBe('done');
  expect((await runTraining(cfg(B, 5), quiet)).status).toBe('stopped'); // 3 SFT steps + 2 of 4 GRPO steps
  expect((await runTraining(cfg(B), { ...quiet, resume: true })).status).toBe('done');
  const stable = (dir: string): unknown[] =>
    fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => Object.fromEntries(Object.entries(JSON.parse(l)).filter(([k]) => k !== 'time' && !k.endsWith('Seconds'))));
  expect(stable(B)).toEqual(stable(A));
  const evalA = JSON.parse(fs.readFileSync(path.join(A, 'eval_final.json'), 'utf8'));
  expect(JSON.parse(fs.readFileSync(path.join(B, 'eval_final.json'), 'utf8'))).toEqual(evalA);
}, 180_000);
