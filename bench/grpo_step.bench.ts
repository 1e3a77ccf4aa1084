// One GRPO step of `medgym train`, end to end, split into its parts: sampling (prefill + decode on the
// native policy), env (resets and tool calls on sharp), forward, GRPO loss, backward, optimizer.
// The default recipe's shape: 8 prompts × G 8 on the default env, tiny preset, shared prompts in both
// the rollout and the update. The policy is a fresh init, so episodes run to the turn limit more often
// than a trained policy's would: read the split, not the absolute time.
// Run: `npx tsx bench/run.ts grpo_step` (~30 s).
import { NativePolicy } from '../src/policy';
import { parseTrainConfig } from '../src/train/config';
import { makeTrainVec } from '../src/train/envs';
import { INDEX_BASE } from '../src/rollout';
import { grpoUpdate } from '../src/train/grpo';
import { rollout } from '../src/rollout';
import { fmt, printTable } from './harness';

const STEPS = 4;

export async function run(): Promise<void> {
  const cfg = parseTrainConfig({});
  const g = cfg.grpo;
  const policy = await NativePolicy.createAsync(cfg.policy.preset, { seed: 0 });
  const vec = makeTrainVec(cfg.env, g.promptsPerStep * g.groupSize, { imageTokens: policy.imageTokens, maxSeq: policy.config.maxSeq });
  const parts = { sample: 0, env: 0, forward: 0, loss: 0, backward: 0, optimizer: 0 };
  let episodes = 0;
  let generated = 0;
  let total = 0;
  try {
    for (let step = -1; step < STEPS; step++) {
      const items = Array.from({ length: g.promptsPerStep }, (_, p) => INDEX_BASE.grpo + (step + 1) * g.promptsPerStep + p);
      const timing = { sampleSeconds: 0, envSeconds: 0 };
      const t0 = performance.now();
      const trajs = await rollout(policy, vec, { seed: 0, step: step + 1, items, groupSize: g.groupSize, temperature: g.temperature, maxNewTokensPerTurn: cfg.env.maxNewTokensPerTurn, timing });
      const m = await grpoUpdate(policy, null, trajs, step + 1, g);
      if (step < 0) continue; // warm-up step: caches, allocations
      total += (performance.now() - t0) / 1000;
      parts.sample += timing.sampleSeconds;
      parts.env += timing.envSeconds;
      parts.forward += m.forwardSeconds;
      parts.loss += m.lossSeconds;
      parts.backward += m.backwardSeconds;
      parts.optimizer += m.optimizerSeconds;
      episodes += trajs.length;
      generated += m.generatedTokens;
    }
  } finally {
    vec.close();
    policy.dispose();
  }
  const accounted = Object.values(parts).reduce((a, b) => a + b, 0);
  const rows = Object.entries(parts).map(([k, v]) => [k, fmt((1000 * v) / STEPS), `${((100 * v) / total).toFixed(1)} %`]);
  rows.push(['other (JS glue, advantages, bookkeeping)', fmt((1000 * (total - accounted)) / STEPS), `${((100 * (total - accounted)) / total).toFixed(1)} %`]);
  rows.push(['step', fmt((1000 * total) / STEPS), '100 %']);
  printTable(`GRPO step split (${cfg.env.id}, ${cfg.policy.preset}, ${g.promptsPerStep} prompts × G ${g.groupSize}; mean of ${STEPS} steps: ${fmt(episodes / total)} episodes/s, ${fmt(generated / total)} generated tokens/s)`, ['part', 'ms per step', 'share'], rows);
}
