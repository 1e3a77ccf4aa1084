// Forward, backward and optimizer agree: the model learns a fixed image → answer mapping.
import { NativePolicy } from '../../src/policy';
import { ANSWER_END_ID, ANSWER_ID, BOS_ID, IMAGE_ID } from '../../src/tokenizer';
import { Rng } from '../helpers/random';
import { TEST_CONFIG, randomView } from './common';

test('the tiny model learns 4 images → 4 answer letters to 100% greedy accuracy', async () => {
  const policy = NativePolicy.create(TEST_CONFIG, { seed: 7 });
  const rng = new Rng(77);
  const letters = [65, 66, 67, 68]; // A B C D
  const images = letters.map(() => randomView(rng, policy.config.imageSize));
  const prompt = [BOS_ID, IMAGE_ID, ANSWER_ID];
  const batch = letters.map((l, i) => ({ tokens: [...prompt, l, ANSWER_END_ID], images: [images[i]] }));
  const accuracy = async (): Promise<number> => {
    const s = policy.createSession();
    const ids = await s.add(batch.map((b) => ({ tokens: prompt, images: b.images })));
    const out = await s.generate(ids, { maxNewTokens: 1, temperature: 0 });
    s.dispose();
    return out.filter((o, i) => o.tokens[0] === letters[i]).length / letters.length;
  };
  const initial = await accuracy();
  let loss = Infinity;
  let first = 0;
  for (let step = 0; step < 300 && !(loss < 0.01); step++) {
    const r = await policy.crossEntropyBackward(batch);
    if (step === 0) first = r.loss;
    loss = r.loss;
    await policy.step({ lr: 3e-3, weightDecay: 0, maxGradNorm: 1 });
  }
  expect(initial).toBeLessThan(1);
  expect(loss).toBeLessThan(0.05);
  expect(loss).toBeLessThan(first / 50);
  expect(await accuracy()).toBe(1);
  // the answer really depends on the image: swapping images swaps answers
  const swapped = await policy.forward(batch.map((b, i) => ({ ...b, images: [images[(i + 1) % 4]] })));
  const right = await policy.forward(batch);
  swapped.logp.forEach((l, i) => expect(l[3]).toBeLessThan(right.logp[i][3] - 1));
  policy.dispose();
});
