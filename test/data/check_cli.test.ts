// `medgym data check`: counts, image sizes and every bad row with its file and line (skipped at
// open time, or an image that does not decode); exit 0 while usable items remain, 1 when none do, on
// any bad row with --strict, and on a path that is no dataset. Three runs go through the CLI as a
// user runs it (child processes, concurrently: each tsx start-up loads the whole CLI); the other
// cases call the command in this process.
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { dataCheckCommand, type DataCheckFlags } from '../../src/cli/data';
import { writeUnder } from '../helpers/datasets';

const ROOT = path.resolve(__dirname, '../..');
const TSX = path.join(ROOT, 'node_modules/.bin/tsx');
const CLI = path.join(ROOT, 'src/cli/main.ts');

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}
function medgym(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(TSX, [CLI, 'data', 'check', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ status: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
  });
}

let dir: string;
const w = (rel: string, data: string | Uint8Array): string => writeUnder(dir, rel, data);
const jsonl = (rel: string, rows: unknown[]): string => w(rel, rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n');
/** The command in this process: its exit code and what it printed. */
async function inProcess(p: string, flags: DataCheckFlags = {}): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const log = jest.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ') + '\n'));
  const error = jest.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(a.join(' ') + '\n'));
  try {
    return { status: await dataCheckCommand(p, flags), stdout: out.join(''), stderr: err.join('') };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
}
const runs: Record<string, Run> = {};

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-check-'));
  const grey = await sharp(Buffer.alloc(16 * 12, 90), { raw: { width: 16, height: 12, channels: 1 } }).png().toBuffer();
  const rgb = await sharp(Buffer.from(Array.from({ length: 40 * 20 * 3 }, (_, i) => (i % 3) * 70)), { raw: { width: 40, height: 20, channels: 3 } }).png().toBuffer();
  const deep = await sharp(new Uint16Array(8 * 6).map((_, i) => i * 1000), { raw: { width: 8, height: 6, channels: 1 } }).toColourspace('grey16').png().toBuffer();
  w('mixed/img/grey.png', grey);
  w('mixed/img/rgb.png', rgb);
  w('mixed/img/deep.png', deep);
  w('mixed/img/corrupt.png', 'not a png');
  jsonl('mixed/data.jsonl', [
    { id: 'g', image: 'img/grey.png', question: 'Which?', options: ['x', 'y', 'z'], answer: 'B', modality: 'ct', question_type: 'diagnosis', box: [1, 2, 8, 9], split: 'train' }, // 1
    '{"image": "img/grey.png", "question": ', // 2: malformed
    { id: 'r', image: 'img/rgb.png', question: 'Mass?', answer: 'yes', modality: 'xray', question_type: 'presence', split: 'test' }, // 3
    { image: 'img/grey.png', question: 'q', options: ['x', 'y'], answer: 'C' }, // 4: answer not an option
    { image: 'img/corrupt.png', question: 'q', answer: 'a', modality: 'mri' }, // 5: does not decode
    { image: 'img/gone.png', question: 'q', answer: 'a' }, // 6: missing image
    { id: 'd', image: 'img/deep.png', question: 'Organ?', answer: 'Liver', modality: 'ct', question_type: 'anatomy' }, // 7
  ]);
  w('broken/img/a.png', 'nope');
  w('broken/img/b.png', grey.subarray(0, 30));
  jsonl('broken/data.jsonl', [
    { image: 'img/a.png', question: 'q', answer: 'a' },
    { image: 'img/b.png', question: 'q', answer: 'b' },
  ]);
  w('slake/imgs/xmlab0/source.jpg', grey);
  const q = (qid: number, answer: string) => ({ qid, img_name: 'xmlab0/source.jpg', question: 'q?', answer, answer_type: answer === 'Yes' ? 'CLOSED' : 'OPEN', modality: 'CT', content_type: 'Organ', q_lang: 'en' });
  w('slake/train.json', JSON.stringify([q(1, 'Yes'), q(2, 'Liver')]));
  w('slake/validate.json', JSON.stringify([q(3, 'Yes')]));
  w('slake/test.json', JSON.stringify([q(4, 'Lung')]));
  fs.mkdirSync(path.join(dir, 'empty'));
  const mixed = path.join(dir, 'mixed');
  const pending: Record<string, Promise<Run>> = {
    text: medgym(mixed),
    strict: medgym(mixed, '--strict'),
    broken: medgym(path.join(dir, 'broken')),
  };
  runs.json = await inProcess(path.join(mixed, 'data.jsonl'), { json: true });
  runs.slake = await inProcess(path.join(dir, 'slake'), { kind: 'slake', json: true });
  runs.unknown = await inProcess(path.join(dir, 'empty'));
  runs.badKind = await inProcess(mixed, { kind: 'nope' });
  runs.strictDecode = await inProcess(path.join(dir, 'broken'), { strict: true, json: true });
  for (const [k, p] of Object.entries(pending)) runs[k] = await p;
}, 180_000);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

test('text report: counts, sizes, and every bad row with file:line; exit 0 while items remain', () => {
  const r = runs.text;
  expect(r.stderr).not.toMatch(/check .*\d+\/\d+/); // no progress bar without a TTY
  expect(r.status).toBe(0);
  const f = path.join(dir, 'mixed', 'data.jsonl');
  const out = r.stdout;
  expect(out).toContain(`dataset: ${path.join(dir, 'mixed')} (jsonl)`);
  expect(out).toMatch(new RegExp(`annotations: 1 file, sha256 [0-9a-f]{64}\\n  ${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\n`));
  expect(out).toContain('items: 3 usable of 4 opened; 4 bad rows (3 skipped when opening, 1 whose image does not decode)');
  expect(out).toContain('splits: (no split of its own) 1, test 1, train 1');
  expect(out).toContain('modalities: ct 2, xray 1');
  expect(out).toContain('question types: anatomy 1, diagnosis 1, presence 1');
  expect(out).toContain('answers: 1 multiple choice, 1 yes/no, 1 open');
  expect(out).toContain('with a finding box: 1');
  expect(out).toContain('image width (min / median / max): 8 / 16 / 40; height: 6 / 12 / 20');
  expect(out).toContain('bit depths: 8-bit 2, 16-bit 1');
  expect(out).toContain('channels: grey 2, RGB 1');
  const bad = out.slice(out.indexOf('bad rows (4):')).split('\n').slice(1, 5);
  expect(bad[0]).toMatch(new RegExp(`^  .*data\\.jsonl:2: invalid JSON`));
  expect(bad[1]).toMatch(/data\.jsonl:4: answer "C" is none of the options$/);
  expect(bad[2]).toMatch(/data\.jsonl:5: unreadable image .*corrupt\.png/);
  expect(bad[3]).toMatch(/data\.jsonl:6: image "img\/gone.png" not found/);
  expect(out.trim().split('\n').pop()).toBe('ok');
});

test('--json: the same report as JSON', () => {
  const r = runs.json;
  expect(r.status).toBe(0);
  const j = JSON.parse(r.stdout);
  const f = path.join(dir, 'mixed', 'data.jsonl');
  expect(j).toMatchObject({
    ok: true,
    path: f,
    kind: 'jsonl',
    annotationFiles: [f],
    opened: 4,
    usable: 3,
    bySplit: { train: 1, test: 1, none: 1 },
    byModality: { ct: 2, xray: 1 },
    answers: { open: 1, multipleChoice: 1, yesNo: 1 },
    withBox: 1,
    images: { width: { min: 8, median: 16, max: 40 }, height: { min: 6, median: 12, max: 20 }, bitDepth: { '8': 2, '16': 1 }, channels: { '1': 2, '3': 1 } },
  });
  expect(j.sha256).toMatch(/^[0-9a-f]{64}$/);
  expect(j.bad.map((b: { where: string; stage: string }) => [b.where, b.stage])).toEqual([
    [`${f}:2`, 'open'],
    [`${f}:4`, 'open'],
    [`${f}:5`, 'decode'],
    [`${f}:6`, 'open'],
  ]);
  expect(j.bad[2].message).toMatch(/^unreadable image/);
});

test('--strict: the first bad row fails the check, named', () => {
  const r = runs.strict;
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/medgym data check: .*mixed\/data\.jsonl:2: invalid JSON/);
});

test('no usable item (every image corrupt): exit 1, the decode failures listed with their lines', () => {
  // --strict opens it (the files are there) and fails it on the decode failures.
  expect(runs.strictDecode.status).toBe(1);
  expect(JSON.parse(runs.strictDecode.stdout)).toMatchObject({ ok: false, usable: 0, bad: [{ stage: 'decode' }, { stage: 'decode' }] });
  const r = runs.broken;
  expect(r.status).toBe(1);
  expect(r.stdout).toContain('items: 0 usable of 2 opened; 2 bad rows (0 skipped when opening, 2 whose image does not decode)');
  expect(r.stdout).toMatch(/broken\/data\.jsonl:1: unreadable image/);
  expect(r.stdout).toMatch(/broken\/data\.jsonl:2: unreadable image/);
  expect(r.stdout.trim().split('\n').pop()).toBe('FAILED: no usable item');
});

test('SLAKE folder: every split in one report', () => {
  const r = runs.slake;
  expect(r.status).toBe(0);
  const j = JSON.parse(r.stdout);
  expect(j).toMatchObject({ ok: true, kind: 'slake', usable: 4, bySplit: { train: 2, val: 1, test: 1 }, answers: { yesNo: 2, open: 2, multipleChoice: 0 }, bad: [] });
  expect(j.annotationFiles.map((f: string) => path.basename(f))).toEqual(['train.json', 'validate.json', 'test.json']);
});

test('a path that is no dataset, and an unknown kind: exit 1 with the kinds listed', () => {
  expect(runs.unknown.status).toBe(1);
  expect(runs.unknown.stderr).toMatch(/cannot tell what dataset the folder .*empty is .*pass a kind: jsonl .*omnimedvqa/);
  expect(runs.badKind.status).toBe(1);
  expect(runs.badKind.stderr).toMatch(/unknown dataset kind "nope"; pass a kind: jsonl/);
});
