// Resume past damage: a truncated latest.json or a truncated policy in the newest checkpoint is named,
// the run continues from the newest checkpoint that verifies (and says which) with the metrics of the
// uninterrupted run, bit for bit; with every checkpoint damaged, resume refuses and lists each one.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { nativeInfo, setNumThreads } from '../../src/native';
import { parseTrainConfig, runTraining, type TrainConfig } from '../../src/train';

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-resume-'));
afterAll(() => {
  setNumThreads(0);
  fs.rmSync(TMP, { recursive: true, force: true });
});

const config = (out: string, stopAfter = 0): TrainConfig =>
  parseTrainConfig({
    out,
    threads: 1,
    stopAfter,
    policy: { preset: 'tiny' },
    sft: { steps: 5, batchSize: 2, demoPool: 4, warmup: 1 },
    grpo: { steps: 0 },
    eval: { items: 1, samples: 1, withoutTools: false, afterSft: false },
    control: false,
    report: false,
    progress: false,
    checkpointEvery: 1,
  });

/** metrics.jsonl without wall-clock fields. */
const metrics = (dir: string): unknown[] =>
  fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => {
    const { time: _t, ...rest } = JSON.parse(l) as Record<string, unknown>;
    return rest;
  });

async function stoppedRun(name: string): Promise<string> {
  const dir = path.join(TMP, name);
  const r = await runTraining(config(dir, 4), { handleSigint: false, log: () => undefined });
  expect(r.status).toBe('stopped');
  return dir;
}

const newest = (dir: string): string => JSON.parse(fs.readFileSync(path.join(dir, 'checkpoints/latest.json'), 'utf8')).dir;

test('resume falls back past a damaged pointer or policy to the newest checkpoint that verifies', async () => {
  setNumThreads(2); // the runs use 1: the check at the end sees whether 2 comes back
  const threadsBefore = nativeInfo().threads;
  const ref = path.join(TMP, 'uninterrupted');
  expect((await runTraining(config(ref), { handleSigint: false, log: () => undefined })).status).toBe('done');

  // A truncated policy file in the newest checkpoint: named, then the previous checkpoint is used.
  const a = await stoppedRun('policy');
  const damaged = newest(a);
  expect(damaged).toBe('checkpoints/0-sft-000004');
  const pol = path.join(a, damaged, 'policy.safetensors');
  fs.truncateSync(pol, fs.statSync(pol).size - 100);
  const logA: string[] = [];
  expect((await runTraining(config(a), { resume: true, handleSigint: false, log: (l) => logA.push(l) })).status).toBe('done');
  expect(logA.join('\n')).toMatch(new RegExp(`checkpoint ${damaged} is damaged: ${pol}: truncated`));
  expect(logA.join('\n')).toMatch(/resuming .* at sft step 3 \(checkpoint checkpoints\/0-sft-000003\)/);
  expect(metrics(a)).toEqual(metrics(ref));

  // A truncated latest.json: named (file and parse error), then the newest checkpoint folder is used.
  const b = await stoppedRun('pointer');
  const latest = path.join(b, 'checkpoints/latest.json');
  fs.writeFileSync(latest, fs.readFileSync(latest, 'utf8').slice(0, 40));
  const logB: string[] = [];
  expect((await runTraining(config(b), { resume: true, handleSigint: false, log: (l) => logB.push(l) })).status).toBe('done');
  expect(logB.join('\n')).toMatch(new RegExp(`${latest}: not valid JSON`));
  expect(logB.join('\n')).toMatch(/continuing from checkpoints\/0-sft-000004, the newest checkpoint that verifies/);
  expect(metrics(b)).toEqual(metrics(ref));
  // `threads: 1` held for each run only: the process-wide pool is given back (later suites in this
  // jest worker see the default again).
  expect(nativeInfo().threads).toBe(threadsBefore);
}, 120_000);

test('with every checkpoint damaged, resume refuses and names each', async () => {
  const c = await stoppedRun('all');
  for (const d of fs.readdirSync(path.join(c, 'checkpoints')).filter((x) => /^\d-/.test(x))) {
    fs.writeFileSync(path.join(c, 'checkpoints', d, 'state.json'), '{"phase": "sft", "step": -1}');
  }
  const err = await runTraining(config(c), { resume: true, handleSigint: false, log: () => undefined }).then(() => null, (e: Error) => e);
  expect(err?.name).toBe('ResumeError');
  expect(err!.message).toMatch(/no checkpoint verifies/);
  expect(err!.message).toMatch(/0-sft-000004\/state\.json: not a run state \(step: /);
  expect(err!.message).toMatch(/0-sft-000003\/state\.json: not a run state/);
}, 60_000);
