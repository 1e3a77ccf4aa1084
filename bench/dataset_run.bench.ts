// A real-data GRPO step against a synthetic one of the same shape: the default recipe's 8 prompts ×
// G 8 on the tiny preset, once on the default synthetic env and once on a dataset of 512×512 PNG
// files (data.jsonl, opened as `medgym train --dataset` opens it), split into data (opening the
// dataset, once), sampling (prefill + decode), env (item loads, views and tool calls) and update
// (forward, loss, backward, optimizer). A fresh-init policy: read the split, not the absolute time.
// Run: `npx tsx bench/run.ts dataset_run` (~1 min).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { NativePolicy } from '../src/policy';
import { parseTrainConfig, type TrainConfig } from '../src/train/config';
import { openRunItems } from '../src/train/data';
import { makeTrainVec } from '../src/train/envs';
import { grpoUpdate } from '../src/train/grpo';
import { rollout } from '../src/rollout';
import { fmt, printTable } from './harness';

const STEPS = 4;
const ITEMS = 96;
const SIDE = 512;

/** ITEMS grey 512×512 PNGs with a bright square, and their data.jsonl. */
async function writeDataset(dir: string): Promise<string> {
  fs.mkdirSync(path.join(dir, 'img'), { recursive: true });
  const rows: string[] = [];
  for (let k = 0; k < ITEMS; k++) {
    const px = Buffer.alloc(SIDE * SIDE);
    for (let i = 0; i < px.length; i++) px[i] = (i * 2654435761) >>> 26; // texture, so PNG does not compress it away
    const x0 = 64 + ((k * 37) % 320);
    const y0 = 64 + ((k * 53) % 320);
    for (let y = y0; y < y0 + 48; y++) px.fill([60, 140, 230][k % 3], y * SIDE + x0, y * SIDE + x0 + 48);
    await sharp(px, { raw: { width: SIDE, height: SIDE, channels: 1 } }).png().toFile(path.join(dir, 'img', `${k}.png`));
    rows.push(JSON.stringify({ image: `img/${k}.png`, question: 'How bright is the finding?', options: ['dark', 'grey', 'bright'], answer: k % 3, modality: 'xray', question_type: 'attribute', box: [x0, y0, x0 + 48, y0 + 48] }));
  }
  const file = path.join(dir, 'data.jsonl');
  fs.writeFileSync(file, rows.join('\n') + '\n');
  return file;
}

interface Split {
  data: number;
  sample: number;
  env: number;
  update: number;
  total: number;
}

async function grpoSteps(cfg: TrainConfig): Promise<Split> {
  const t0 = performance.now();
  const items = await openRunItems(cfg);
  const data = (performance.now() - t0) / 1000;
  const g = cfg.grpo;
  const policy = await NativePolicy.createAsync(cfg.policy.preset, { seed: 0 });
  const vec = makeTrainVec(cfg.env, g.promptsPerStep * g.groupSize, { imageTokens: policy.imageTokens, maxSeq: policy.config.maxSeq }, items.envExtra);
  const s: Split = { data, sample: 0, env: 0, update: 0, total: 0 };
  try {
    for (let step = -1; step < STEPS; step++) {
      const timing = { sampleSeconds: 0, envSeconds: 0 };
      const t1 = performance.now();
      const trajs = await rollout(policy, vec, { seed: 0, step: step + 1, items: items.source.grpoItems(step + 1, g.promptsPerStep), groupSize: g.groupSize, temperature: g.temperature, maxNewTokensPerTurn: cfg.env.maxNewTokensPerTurn, timing });
      const t2 = performance.now();
      await grpoUpdate(policy, null, trajs, step + 1, g);
      if (step < 0) continue; // warm-up step: caches, allocations
      s.sample += timing.sampleSeconds;
      s.env += timing.envSeconds;
      s.update += (performance.now() - t2) / 1000;
      s.total += (performance.now() - t1) / 1000;
    }
  } finally {
    vec.close();
    policy.dispose();
  }
  return s;
}

export async function run(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-bench-data-'));
  try {
    const file = await writeDataset(dir);
    const synth = await grpoSteps(parseTrainConfig({}));
    const real = await grpoSteps(parseTrainConfig({ env: { dataset: { path: file } } }));
    const row = (name: string, s: Split): string[] => [name, fmt(s.data * 1000), ...[s.sample, s.env, s.update, s.total].map((x) => fmt((x / STEPS) * 1000))];
    printTable(
      `GRPO step, 8 prompts × G 8, tiny preset, fresh init: ms per step (mean of ${STEPS}); data = opening the dataset, once`,
      ['items', 'data (once)', 'sample', 'env', 'update', 'step'],
      [row('synthetic (default env)', synth), row(`${ITEMS} PNG files ${SIDE}×${SIDE} (data.jsonl)`, real), ['dataset / synthetic', '', ...[real.sample / synth.sample, real.env / synth.env, real.update / synth.update, real.total / synth.total].map((r) => `${r.toFixed(2)}×`)]],
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
