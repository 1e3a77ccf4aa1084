// Backward of the native policy against central finite differences of the float64 reference, on a
// handful of elements of every tensor kind; SFT cross-entropy; gradient accumulation.
import { NativePolicy } from '../../src/policy';
import { Rng } from '../helpers/random';
import { refWeightedLogprobLoss } from '../helpers/ref_policy';
import { TEST_CONFIG, mixedBatch, paramsF64, randomizeWeights } from './common';

const KINDS = [
  'wte.weight', 'wpe.weight', 'patch_embed.weight', 'patch_embed.bias', 'patch_pos.weight',
  'h.0.ln_1.weight', 'h.0.ln_1.bias', 'h.0.attn.c_attn.weight', 'h.0.attn.c_attn.bias', 'h.1.attn.c_proj.weight',
  'h.1.attn.c_proj.bias', 'h.0.ln_2.weight', 'h.1.ln_2.bias', 'h.1.mlp.c_fc.weight', 'h.0.mlp.c_fc.bias',
  'h.0.mlp.c_proj.weight', 'h.1.mlp.c_proj.bias', 'ln_f.weight', 'ln_f.bias',
];

describe('NativePolicy.backward', () => {
  const policy = NativePolicy.create({ ...TEST_CONFIG, dModel: 16, nHead: 2, maxSeq: 48 }, { seed: 1 });
  randomizeWeights(policy, 21);
  const cfg = policy.config;
  const rng = new Rng(9);
  const batch = mixedBatch(rng, cfg.imageSize).slice(0, 3).map((s) => ({ ...s, tokens: s.tokens.slice(0, 14) }));
  batch[2].images = batch[2].images!.slice(0, batch[2].tokens.filter((t) => t === 259).length);
  const wl = batch.map((s) => s.tokens.map(() => rng.normal()));
  const we = batch.map((s) => s.tokens.map(() => 0.3 * rng.normal()));
  const tau = 0.9;
  const P = paramsF64(policy);
  const loss = refWeightedLogprobLoss(cfg, batch, wl, we, tau);
  afterAll(() => policy.dispose());

  test('gradients of Σ w·logp + u·entropy match finite differences for every tensor kind', async () => {
    await policy.zeroGrad();
    await policy.forward(batch, { temperature: tau, requireGrad: true });
    await policy.backward({ dlogp: wl, dentropy: we });
    const table = new Map(policy.parameters().map((t) => [t.name, t]));
    const used = new Set<number>();
    for (const s of batch) for (const t of s.tokens) used.add(t);
    for (const name of KINDS) {
      const g = policy.getGradient(name);
      const x = P.get(name)!;
      // pick elements with a gradient: for wte rows of tokens present, for wpe the first positions
      const cand: number[] = [];
      const d = cfg.dModel;
      for (let k = 0; cand.length < 3 && k < 400; k++) {
        const i = name === 'wte.weight' ? [...used][k % used.size] * d + rng.int(0, d) : name === 'wpe.weight' ? rng.int(0, 10 * d) : rng.int(0, table.get(name)!.size);
        if (!cand.includes(i)) cand.push(i);
      }
      for (const i of cand) {
        const h = 1e-4;
        const orig = x[i];
        x[i] = orig + h;
        const lp = loss(P);
        x[i] = orig - h;
        const lm = loss(P);
        x[i] = orig;
        const fd = (lp - lm) / (2 * h);
        const err = Math.abs(g[i] - fd) / Math.max(Math.abs(fd), 1e-2);
        if (!(err < 2e-3)) throw new Error(`${name}[${i}]: native ${g[i]} vs finite difference ${fd} (rel ${err})`);
      }
      expect(g.some((v) => v !== 0)).toBe(true);
    }
  });

  test('gradients accumulate across micro-batches; zeroGrad clears them', async () => {
    await policy.zeroGrad();
    await policy.forward(batch, { requireGrad: true });
    await policy.backward({ dlogp: wl });
    const once = policy.getGradient('h.0.attn.c_attn.weight');
    await policy.forward(batch, { requireGrad: true });
    await policy.backward({ dlogp: wl });
    const twice = policy.getGradient('h.0.attn.c_attn.weight');
    for (let i = 0; i < once.length; i += 7) expect(twice[i]).toBeCloseTo(2 * once[i], 5);
    await policy.zeroGrad();
    expect(policy.getGradient('h.0.attn.c_attn.weight').every((v) => v === 0)).toBe(true);
  });

  test('cross-entropy (SFT) equals -mean logp and its gradient equals backward(dlogp = -1/count)', async () => {
    await policy.zeroGrad();
    const ce = await policy.crossEntropyBackward(batch);
    const gCe = policy.getGradient('h.1.mlp.c_fc.weight');
    await policy.zeroGrad();
    const r = await policy.forward(batch, { requireGrad: true });
    let sum = 0;
    r.logp.forEach((l) => l.forEach((v) => (sum += v)));
    expect(ce.count).toBe(r.scored);
    expect(ce.loss).toBeCloseTo(-sum / r.scored, 4);
    const dl = batch.map((s) => s.tokens.map((t, k) => (k > 0 && t !== 259 ? -1 / r.scored : 0)));
    await policy.backward({ dlogp: dl });
    const gBw = policy.getGradient('h.1.mlp.c_fc.weight');
    for (let i = 0; i < gCe.length; i++) expect(Math.abs(gCe[i] - gBw[i])).toBeLessThanOrEqual(1e-6 + 1e-5 * Math.abs(gBw[i]));
    await policy.zeroGrad();
  });

  test('backward without a saved forward is rejected; a scoring forward keeps nothing', async () => {
    await policy.forward(batch);
    await expect(policy.backward({ dlogp: wl })).rejects.toThrow(/requireGrad/);
  });

  test('step: AdamW moves the weights, clipping reports the norm, weight decay skips 1-D tensors', async () => {
    await policy.zeroGrad();
    await policy.forward(batch, { requireGrad: true });
    await policy.backward({ dlogp: wl });
    const before = policy.getParameter('h.0.ln_1.bias');
    const w0 = policy.getParameter('h.0.mlp.c_fc.weight');
    const s = await policy.step({ lr: 1e-2, maxGradNorm: 1e-3, weightDecay: 0.5 });
    expect(s.clipped).toBe(true);
    expect(s.finite).toBe(true);
    expect(s.gradNorm).toBeGreaterThan(1e-3);
    expect(policy.getParameter('h.0.ln_1.bias')).not.toEqual(before);
    expect(policy.getParameter('h.0.mlp.c_fc.weight')).not.toEqual(w0);
    expect(policy.getGradient('wte.weight').every((v) => v === 0)).toBe(true); // zeroGrad after step
    // a zero gradient: only decay moves a 2-D weight, a 1-D one stays
    const b1 = policy.getParameter('h.0.ln_1.bias');
    const w1 = policy.getParameter('h.0.mlp.c_fc.weight');
    await policy.step({ lr: 1e-2, weightDecay: 0.5, beta1: 0, beta2: 0 });
    const w2 = policy.getParameter('h.0.mlp.c_fc.weight');
    expect(w2[0]).toBeCloseTo(w1[0] * (1 - 1e-2 * 0.5), 6);
    expect(Array.from(policy.getParameter('h.0.ln_1.bias'))).toEqual(Array.from(b1));
  });
});
