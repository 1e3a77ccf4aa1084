// GRPO rollouts prefill each prompt once and fork it into its G samples (src/train/rollout.ts): the
// trajectories (tokens, masks, sampled logp, rewards) are identical, bit for bit, to those of G
// separate prefills with the same stream keys.
import { NativePolicy } from '../../src/policy';
import { makeTrainVec } from '../../src/train/envs';
import { parseTrainConfig } from '../../src/train/config';
import { rollout } from '../../src/rollout';
import { randomizeWeights } from './common';

test('shared-prompt rollouts equal separate-prefill rollouts (multi-turn, with tool responses)', async () => {
  const cfg = parseTrainConfig({ env: { maxNewTokensPerTurn: 12 } });
  // 64×64 views of 8×8 patches, as the env renders them; a narrow model keeps this fast.
  const policy = NativePolicy.create({ preset: 'tiny', dModel: 32, nLayer: 2, nHead: 2 }, { seed: 1 });
  randomizeWeights(policy, 5);
  const G = 3;
  let forks = 0; // count fork calls, to know the shared path was taken
  const create = policy.createSession.bind(policy);
  policy.createSession = (o) => {
    const s = create(o);
    const fork = s.fork.bind(s);
    s.fork = (...args) => (forks++, fork(...args));
    return s;
  };
  const vec = makeTrainVec(cfg.env, 2 * G, { imageTokens: policy.imageTokens, maxSeq: policy.config.maxSeq });
  try {
    const opts = { seed: 7, step: 2, items: [1 << 28, (1 << 28) + 1], groupSize: G, temperature: 1, maxNewTokensPerTurn: 12 };
    const shared = await rollout(policy, vec, opts);
    expect(forks).toBe(2); // one per prompt
    const separate = await rollout(policy, vec, { ...opts, sharePrompts: false });
    expect(forks).toBe(2);
    const view = (ts: typeof shared) => ts.map((t) => ({ tokens: t.tokens, mask: Array.from(t.mask), logp: Array.from(t.oldLogp), reward: t.reward, turns: t.turns }));
    expect(view(shared)).toEqual(view(separate));
    expect(shared.some((t) => t.turns > 1)).toBe(true); // env responses were appended and generated after
    // samples of one prompt differ (their own streams), prompts differ
    expect(shared[0].tokens).not.toEqual(shared[1].tokens);
    // another step samples differently
    const next = await rollout(policy, vec, { ...opts, step: 3 });
    expect(view(next)).not.toEqual(view(shared));
  } finally {
    vec.close();
    policy.dispose();
  }
});
