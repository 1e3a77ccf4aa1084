// The pieces of a GRPO step fit together: sample with a session (old_logp), score with a forward
// (requireGrad), grpoLoss → ∂loss/∂logp, backward, AdamW. The policy learns to prefer the rewarded answer.
import { grpoLoss } from '../../src/native';
import { NativePolicy } from '../../src/policy';
import { ANSWER_ID, BOS_ID, IMAGE_ID, VOCAB_SIZE } from '../../src/tokenizer';
import { Rng } from '../helpers/random';
import { TEST_CONFIG, randomView } from './common';

test('GRPO loop: on-policy ratio is 1, and the rewarded answer gains probability', async () => {
  const policy = NativePolicy.create(TEST_CONFIG, { seed: 11 });
  const view = randomView(new Rng(4), policy.config.imageSize);
  const prompt = [BOS_ID, IMAGE_ID, ANSWER_ID];
  const A = 65;
  const banned = Array.from({ length: VOCAB_SIZE }, (_, i) => i).filter((i) => i !== A && i !== 66);
  const G = 16;
  const pA = async (): Promise<number> => {
    const r = await policy.forward([{ tokens: [...prompt, A], images: [view] }]);
    return Math.exp(r.logp[0][3]);
  };
  const before = await pA();
  for (let step = 0; step < 12; step++) {
    const s = policy.createSession({ seed: 3 });
    const ids = await s.add(Array.from({ length: G }, (_, g) => ({ tokens: prompt, images: [view], key: { step, sampleIndex: g } })));
    const out = await s.generate(ids, { maxNewTokens: 1, bannedTokens: banned });
    s.dispose();
    const seqs = out.map((o) => ({ tokens: [...prompt, ...o.tokens], images: [view], mask: [0, 0, 0, 1] }));
    const r = await policy.forward(seqs, { requireGrad: true });
    const T = 4;
    const logp = new Float32Array(G * T);
    const oldLogp = new Float32Array(G * T);
    const mask = new Float32Array(G * T);
    out.forEach((o, g) => {
      logp.set(r.logp[g], g * T);
      oldLogp[g * T + 3] = o.logp[0];
      mask[g * T + 3] = 1;
      if (step === 0) expect(Math.abs(r.logp[g][3] - o.logp[0])).toBeLessThan(1e-5); // ρ = 1 on-policy
    });
    const rewards = Float32Array.from(out, (o) => (o.tokens[0] === A ? 1 : 0));
    const loss = grpoLoss({ logp, oldLogp, mask, rewards, groups: new Int32Array(G), seqLen: T });
    await policy.backward({ dlogp: out.map((_, g) => loss.dlogp.subarray(g * T, (g + 1) * T)) });
    await policy.step({ lr: 1e-2, weightDecay: 0 });
  }
  const after = await pA();
  expect(after).toBeGreaterThan(before * 2);
  policy.dispose();
});
