// GRPO rollout throughput (SPEC §7 rollouts through src/train/rollout.ts): one GRPO-shaped batch,
// 8 prompts × G 8 on MedVista-Synth-v0 with the tiny policy (random init: it writes junk until a
// stop token or the per-turn budget, so episodes are mostly 1-2 turns of up to 64 tokens), sampled at
// τ = 1. Races the two prefill strategies of the same code in one run:
//   shared: each prompt is prefilled once and forked into its G samples (KV cache shared);
//   separate: every sample prefills its own copy of the prompt (what rollouts did before fork).
// Both must give identical trajectories (same stream keys); the bench checks it before timing.
// Prints episodes/s, generated tokens/s and the ratio. Run: `npx tsx bench/run.ts rollout` (~1 min).
// With MEDGYM_ADDON=<an addon built before session.fork> only the separate-prefill row runs (the
// "before" figure of bench/RESULTS.md).
import { nativeInfo } from '../src/native';
import { nativePolicyFunctions } from '../src/native/policy';
import { NativePolicy } from '../src/policy';
import { makeTrainVec } from '../src/train/envs';
import { parseTrainConfig } from '../src/train/config';
import { rollout, type Trajectory } from '../src/rollout';
import { printTable, timeAsync } from './harness';

const PROMPTS = 8;
const G = 8;
const QUICK = process.env.MEDGYM_ROLLOUT_BENCH_QUICK === '1';

export async function run(): Promise<void> {
  const cfg = parseTrainConfig({});
  const policy = NativePolicy.create('tiny', { seed: 0 });
  const vec = makeTrainVec(cfg.env, PROMPTS * G, { imageTokens: policy.imageTokens, maxSeq: policy.config.maxSeq });
  try {
    const items = Array.from({ length: PROMPTS }, (_, p) => (1 << 28) + p);
    const opts = (step: number, sharePrompts: boolean) => ({ seed: 1, step, items, groupSize: G, temperature: 1, maxNewTokensPerTurn: cfg.env.maxNewTokensPerTurn, sharePrompts });
    const same = (a: Trajectory[], b: Trajectory[]) =>
      a.every((t, i) => t.tokens.length === b[i].tokens.length && t.tokens.every((x, k) => x === b[i].tokens[k]) && t.oldLogp.every((x, k) => x === b[i].oldLogp[k]));
    const canFork = typeof (nativePolicyFunctions() as Partial<ReturnType<typeof nativePolicyFunctions>>).sessionForkAsync === 'function';
    if (canFork) {
      const check = [await rollout(policy, vec, opts(0, true)), await rollout(policy, vec, opts(0, false))];
      if (!same(check[0], check[1])) throw new Error('rollout bench: shared-prompt and separate-prefill rollouts differ');
    } else {
      await rollout(policy, vec, opts(0, false)); // warmup
    }
    const rows: (string | number)[][] = [];
    const base: Record<string, number> = {};
    for (const share of canFork ? [false, true] : [false]) {
      let episodes = 0;
      let generated = 0;
      let turns = 0;
      let step = 1;
      const t = await timeAsync(
        async () => {
          const trajs = await rollout(policy, vec, opts(step++, share));
          episodes += trajs.length;
          generated += trajs.reduce((a, x) => a + x.generated, 0);
          turns += trajs.reduce((a, x) => a + x.turns, 0);
        },
        { warmup: 0, minRuns: QUICK ? 1 : 3, minTimeMs: 0 },
      );
      const calls = t.runs;
      const perCallMs = t.medianMs;
      const eps = (episodes / calls / perCallMs) * 1e3;
      const tps = (generated / calls / perCallMs) * 1e3;
      const name = share ? 'shared prompt (fork)' : 'separate prefill';
      base[name] = perCallMs;
      rows.push([name, perCallMs, eps, tps, (generated / episodes).toFixed(1), (turns / episodes).toFixed(2), share ? base['separate prefill'] / perCallMs : 1]);
    }
    printTable(
      `rollout: ${PROMPTS} prompts × G ${G} on ${cfg.env.id}, tiny policy (random init), τ = 1, ${cfg.env.maxNewTokensPerTurn} new tokens/turn, ${nativeInfo().threads} threads (median of runs)`,
      ['prefill', 'ms / batch', 'episodes/s', 'generated tok/s', 'tokens / episode', 'turns / episode', 'speedup'],
      rows,
    );
  } finally {
    vec.close();
    policy.dispose();
  }
}
