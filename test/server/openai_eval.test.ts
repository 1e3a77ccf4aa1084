// The bridge both ways, end to end: a medgym-vlm checkpoint behind `medgym serve`, driven by
// HttpPolicy, gives exactly what the same checkpoint gives in-process — rollout trajectories token
// for token and their log-probs (greedy and sampled groups, multi-turn, with tool views in the context), and the whole
// `medgym eval` (Acc@1, Pass@K, with and without tools) — and `medgym eval --policy` writes it.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { evalAnyCommand } from '../../src/cli/eval_model';
import { NativePolicy, type PolicyConfig } from '../../src/policy';
import { HttpPolicy } from '../../src/policy/openai';
import { rollout, type Trajectory } from '../../src/rollout';
import { parseTrainConfig, type TrainConfig } from '../../src/train/config';
import { openRunItems } from '../../src/train/data';
import { makeTrainVec } from '../../src/train/envs';
import { evaluatePolicy } from '../../src/train/evaluate_run';
import { makeDemos, sftStep } from '../../src/train/sft';
import { useOpenAIServers } from './openai_harness';

/** 64-pixel RGB views of 16-pixel patches (N_p 16): the env's default views, a fast model. */
const CONFIG: Partial<PolicyConfig> = { dModel: 48, nLayer: 2, nHead: 4, maxSeq: 768, patch: 16, imageSize: 64, channels: 3 };
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-openai-eval-'));
afterAll(() => fs.rmSync(TMP, { recursive: true, force: true }));
const serve = useOpenAIServers();

const cfg: TrainConfig = parseTrainConfig({
  seed: 3,
  threads: 1,
  env: { systemPrompt: 'short', maxTurns: 3, maxNewTokensPerTurn: 48 },
  sft: { steps: 200, batchSize: 4, demoPool: 8, noToolShare: 0, noisyShare: 0, warmup: 2, lr: 3e-3 },
  eval: { items: 3, samples: 3, temperature: 1 },
});

let file: string;
beforeAll(async () => {
  // A little SFT on the expert's demonstrations, so that the policy calls zoom_in (views enter the
  // context through tool responses) and answers; no need for it to be right.
  const items = await openRunItems(cfg);
  const p = NativePolicy.create(CONFIG, { seed: 1 });
  const vec = makeTrainVec(cfg.env, 4, { imageTokens: 16, maxSeq: CONFIG.maxSeq! }, { ...items.envExtra, revealGroundTruth: true });
  try {
    const demos = await makeDemos(vec, [0, 1, 2, 3], cfg.seed, cfg.sft);
    for (let step = 0; step < cfg.sft.steps; step++) await sftStep(p, demos, step, cfg.sft);
    file = path.join(TMP, 'sft.safetensors');
    await p.save(file);
  } finally {
    vec.close();
    p.dispose();
  }
}, 120_000);

const summary = (t: Trajectory) => ({ tokens: t.tokens, mask: Array.from(t.mask), reward: t.reward, correct: t.correct, toolCalls: t.toolCalls });

test('rollouts through HttpPolicy → medgym serve equal in-process rollouts of the checkpoint, token for token', async () => {
  const { baseURL } = await serve(file, { name: 'sft' });
  const local = await NativePolicy.load(file);
  const remote = await HttpPolicy.connect(baseURL, 'sft');
  expect([remote.protocol, remote.imageTokens, remote.maxSeq]).toEqual(['medgym-vlm', local.imageTokens, local.maxSeq]);
  const items = await openRunItems(cfg);
  const vec = makeTrainVec(cfg.env, 8, { imageTokens: local.imageTokens, maxSeq: local.maxSeq }, items.envExtra);
  try {
    for (const [temperature, groupSize] of [
      [0, 1],
      [1, 4],
    ]) {
      const o = { seed: 11, step: 2, items: [5, 6], groupSize, temperature, maxNewTokensPerTurn: cfg.env.maxNewTokensPerTurn };
      const want = await rollout(local, vec, o);
      const got = await rollout(remote, vec, o);
      expect(got.map(summary)).toEqual(want.map(summary));
      // The served log-probs are the sampled tokens' (GRPO's old_logp): the first turn's prompt is
      // prefilled alike, later turns are recomputed whole by the server, hence a float32 tolerance.
      for (const [k, t] of want.entries()) {
        const diff = t.oldLogp.reduce((m, v, i) => Math.max(m, Math.abs(v - got[k].oldLogp[i])), 0);
        expect(diff).toBeLessThan(1e-4);
        if (temperature > 0) expect(t.oldLogp.some((v) => v < 0)).toBe(true);
      }
      if (temperature === 0) {
        // The test means something only if episodes went several turns with views from the tools.
        expect(want.some((t) => t.toolCalls > 0 && t.images.length > 1)).toBe(true);
      }
    }
  } finally {
    vec.close();
    remote.dispose();
    local.dispose();
  }
}, 120_000);

test('medgym eval --policy against medgym serve equals the in-process eval of the same checkpoint', async () => {
  const { baseURL } = await serve(file, { name: 'sft' });
  const items = await openRunItems(cfg);
  const local = await NativePolicy.load(file);
  let want;
  try {
    want = await evaluatePolicy(local, cfg, items, 'sft');
  } finally {
    local.dispose();
  }
  const cfgFile = path.join(TMP, 'config.json');
  fs.writeFileSync(cfgFile, JSON.stringify(cfg));
  const out = path.join(TMP, 'eval.json');
  const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    expect(await evalAnyCommand({ policy: baseURL, model: 'sft', config: cfgFile, out })).toBe(0);
  } finally {
    stderr.mockRestore();
  }
  const got = JSON.parse(fs.readFileSync(out, 'utf8'));
  expect(got).toEqual(JSON.parse(JSON.stringify(want)));
  expect(got.withoutTools).toBeDefined();
  expect(got.withTools.passAtK).toHaveLength(3);
}, 180_000);
