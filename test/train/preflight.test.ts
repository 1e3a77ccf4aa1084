// Preflight: every problem that would stop a run is reported before any work, one line each, and
// nothing is written; a run folder that already holds a run is refused unless resuming.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseTrainConfig, preflight } from '../../src/train';
import { checkRunFolder } from '../../src/train/preflight';

const ROOT = path.resolve(__dirname, '../..');
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-preflight-'));
afterAll(() => fs.rmSync(TMP, { recursive: true, force: true }));

test('a good config has no problems and writes nothing', async () => {
  const out = path.join(TMP, 'fresh', 'run');
  expect((await preflight(parseTrainConfig({ out }))).problems).toEqual([]);
  expect(fs.existsSync(path.join(TMP, 'fresh'))).toBe(false);
});

test('every problem is reported, one line each', async () => {
  const file = path.join(TMP, 'a-file');
  fs.writeFileSync(file, 'x');
  const badInit = path.join(TMP, 'bad.safetensors');
  fs.writeFileSync(badInit, Buffer.from([200, 0, 0, 0, 0, 0, 0, 0, 123]));
  expect((await preflight(parseTrainConfig({ out: path.join(TMP, 'typo'), env: { id: 'MedVista-Synth-Lesoin-v0' } }))).problems).toEqual([
    expect.stringMatching(/^env\.id: Unknown env id "MedVista-Synth-Lesoin-v0" \(did you mean 'MedVista-Synth-Lesion-v0'\?\)/),
  ]);
  const cfg = parseTrainConfig({
    out: path.join(file, 'run'),
    env: { id: 'NoSuchEnv-v9', maxNewTokensPerTurn: 4096 },
    policy: { init: badInit },
  });
  const { problems } = await preflight(cfg);
  expect(problems).toHaveLength(3);
  expect(problems[0]).toMatch(/^env\.id: Unknown env id "NoSuchEnv-v9"; registered: .*MedVista-Synth-v0/);
  expect(problems[1]).toMatch(new RegExp(`^policy\\.init: ${badInit}: truncated`));
  expect(problems[2]).toMatch(/^out: .*a-file is a file, not a folder$/);

  const tooLong = (await preflight(parseTrainConfig({ out: path.join(TMP, 'x'), env: { maxNewTokensPerTurn: 4096 } }))).problems;
  expect(tooLong).toEqual(['env.maxNewTokensPerTurn: 4096 leaves no room for the prompt in the policy\'s 1024 positions']);
  expect((await preflight(parseTrainConfig({ out: path.join(TMP, 'y'), env: { trainModalities: ['ct'], id: 'MedVista-Synth-Lesion-Visible-v0' } }))).problems).toEqual([
    expect.stringMatching(/^env\.trainModalities: .*ct not among the modalities/),
  ]);
  expect((await preflight(parseTrainConfig({ out: path.join(TMP, 'z'), policy: { init: path.join(TMP, 'missing.safetensors') } }))).problems).toEqual([
    expect.stringMatching(/^policy\.init: .*missing\.safetensors: cannot open: ENOENT/),
  ]);
});

test('a folder holding a run is refused unless resuming', async () => {
  const out = path.join(TMP, 'old-run');
  fs.mkdirSync(path.join(out, 'checkpoints'), { recursive: true });
  fs.writeFileSync(path.join(out, 'metrics.jsonl'), '{}\n');
  expect((await preflight(parseTrainConfig({ out }))).problems).toEqual([expect.stringMatching(/already holds a run; continue it with --resume/)]);
  expect((await preflight(parseTrainConfig({ out }), { resume: true })).problems).toEqual([]);
});

test('too little disk space for the checkpoints is a problem', () => {
  expect(checkRunFolder(path.join(TMP, 'space'), false, 1)).toEqual([]);
  expect(checkRunFolder(path.join(TMP, 'space'), false, 2 ** 60)).toEqual([expect.stringMatching(/MiB free; the run's checkpoints need about \d+ MiB$/)]);
});

test('`medgym train` with a bad env id and device stops before any work, writing nothing', () => {
  const out = path.join(TMP, 'cli', 'run');
  const r = spawnSync(path.join(ROOT, 'node_modules/.bin/tsx'), [path.join(ROOT, 'src/cli/main.ts'), 'train', '--env', 'NoSuchEnv-v9', '--device', 'cuda', '--out', out, '--no-progress'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/medgym train: \d problems? before starting:\n {2}- env\.id: Unknown env id "NoSuchEnv-v9"/);
  expect(r.stderr).not.toMatch(/SFT demo pool|policy device/);
  expect(fs.existsSync(path.join(TMP, 'cli'))).toBe(false);
}, 60_000);
