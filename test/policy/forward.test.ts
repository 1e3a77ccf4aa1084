// Forward of the native policy against the float64 reference (SPEC §1), on random weights.
import { NativePolicy } from '../../src/policy';
import { encode } from '../../src/tokenizer';
import { expectClose } from '../helpers/compare';
import { Rng } from '../helpers/random';
import { refLogprob } from '../helpers/ref_policy';
import { TEST_CONFIG, mixedBatch, paramsF64, randomizeWeights } from './common';

describe('NativePolicy.forward', () => {
  const policy = NativePolicy.create(TEST_CONFIG, { seed: 3 });
  randomizeWeights(policy, 11);
  const P = paramsF64(policy);
  const cfg = policy.config;
  afterAll(() => policy.dispose());

  test.each([1, 0.7])('matches the float64 reference (τ = %p), ragged batch with images', async (tau) => {
    const batch = mixedBatch(new Rng(5), cfg.imageSize);
    const r = await policy.forward(batch, { temperature: tau });
    batch.forEach((s, i) => {
      const ref = refLogprob(cfg, P, s, tau);
      expect(r.logp[i].length).toBe(s.tokens.length);
      expectClose(r.logp[i], ref.logp, 1e-4);
      expectClose(r.entropy[i], ref.entropy, 1e-4);
    });
    // text tokens after the first are scored; image tokens are not
    expect(r.scored).toBe(batch.reduce((a, s) => a + s.tokens.slice(1).filter((t) => t !== 259).length, 0));
    expect(r.positions).toBe(batch.reduce((a, s) => a + s.tokens.reduce((b, t) => b + (t === 259 ? policy.imageTokens : 1), 0), 0));
  });

  test('the non-trivial weights give far-from-uniform distributions (the check has teeth)', async () => {
    const r = await policy.forward([{ tokens: encode('<|bos|>hello world') }]);
    const ent = Array.from(r.entropy[0].slice(1));
    expect(Math.min(...ent)).toBeLessThan(Math.log(cfg.vocabSize) - 0.5);
  });

  test('createAsync initializes exactly like create (same seed); another seed differs', async () => {
    const a = NativePolicy.create(TEST_CONFIG, { seed: 5 });
    const b = await NativePolicy.createAsync(TEST_CONFIG, { seed: 5 });
    const c = NativePolicy.create(TEST_CONFIG, { seed: 6 });
    for (const t of a.parameters()) expect(Array.from(b.getParameter(t.name))).toEqual(Array.from(a.getParameter(t.name)));
    expect(Array.from(c.getParameter('wte.weight'))).not.toEqual(Array.from(a.getParameter('wte.weight')));
    // GPT-2 init: N(0, 0.02) weights, residual projections smaller, LayerNorm weight 1
    const w = a.getParameter('h.0.attn.c_attn.weight');
    const sd = Math.sqrt(w.reduce((s, x) => s + x * x, 0) / w.length);
    expect(sd).toBeGreaterThan(0.018);
    expect(sd).toBeLessThan(0.022);
    expect(a.getParameter('ln_f.weight').every((x) => x === 1)).toBe(true);
    for (const p of [a, b, c]) p.dispose();
  });

  test('mask: unscored tokens are 0, scored ones unchanged', async () => {
    const s = mixedBatch(new Rng(6), cfg.imageSize)[0];
    const mask = s.tokens.map((_, i) => (i % 3 === 0 ? 1 : 0));
    const full = await policy.forward([s]);
    const part = await policy.forward([{ ...s, mask }]);
    for (let t = 0; t < s.tokens.length; t++) expect(part.logp[0][t]).toBe(mask[t] ? full.logp[0][t] : 0);
  });

  test('a sequence scores the same alone and inside a batch; repeated calls are bit-identical', async () => {
    const batch = mixedBatch(new Rng(7), cfg.imageSize);
    const all = await policy.forward(batch);
    const again = await policy.forward(batch);
    expect(Array.from(again.logp[2])).toEqual(Array.from(all.logp[2]));
    const alone = await policy.forward([batch[2]]);
    expectClose(alone.logp[0], all.logp[2], 1e-5);
  });

  test('a 1-channel view equals the same grey view replicated to 3 channels', async () => {
    const rng = new Rng(8);
    const grey = new Uint8Array(cfg.imageSize * cfg.imageSize).map(() => rng.int(0, 256));
    const rgb = new Uint8Array(grey.length * 3).map((_, i) => grey[Math.floor(i / 3)]);
    const tokens = [256, 259, 65, 66];
    const a = await policy.forward([{ tokens, images: [{ data: grey, width: 16, height: 16, channels: 1 }] }]);
    const b = await policy.forward([{ tokens, images: [{ data: rgb, width: 16, height: 16, channels: 3 }] }]);
    expect(Array.from(a.logp[0])).toEqual(Array.from(b.logp[0]));
  });

  test('the work runs off the event loop (a setImmediate fires before the forward resolves)', async () => {
    const batch = Array.from({ length: 8 }, () => ({ tokens: encode('<|bos|>' + 'a'.repeat(80)) }));
    let fired = false;
    const firedAtResolve = policy.forward(batch).then(() => fired);
    setImmediate(() => (fired = true));
    expect(await firedAtResolve).toBe(true);
  });
});
