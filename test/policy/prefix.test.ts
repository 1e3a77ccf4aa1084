// Shared-prefix packing (ForwardOptions.prefixGroups, native/model/prefix.h): a group's common prefix
// is computed once, and every output and gradient equals the unshared batch's to float32 rounding;
// the shared path itself matches finite differences of the float64 reference.
import { nativePolicyFunctions } from '../../src/native/policy';
import { NativePolicy, type PolicySequence, type PrefixGroup } from '../../src/policy';
import { packBatch } from '../../src/policy/native_policy';
import { rawPrefixGroups } from '../../src/policy/prefix';
import { BOS_ID, IMAGE_ID } from '../../src/tokenizer';
import { Rng } from '../helpers/random';
import { refWeightedLogprobLoss } from '../helpers/ref_policy';
import { TEST_CONFIG, paramsF64, randomView, randomizeWeights } from './common';

type Seq = PolicySequence & { tokens: number[]; mask?: number[] };

/**
 * Two prompt groups and one lone sequence, interleaved: group A's prompt holds an image and spans
 * more than one 32-query attention block; group B's prompt ends with its image; continuations hold
 * env images. GRPO masks (prompt and env responses 0) or none (every text token scored).
 */
function groupedBatch(rng: Rng, size: number, masked: boolean): { batch: Seq[]; groups: Required<PrefixGroup>[]; prompts: number[][] } {
  const text = (n: number): number[] => Array.from({ length: n }, () => rng.int(65, 91));
  const view = randomView(rng, size);
  const promptA = [BOS_ID, ...text(14), IMAGE_ID, ...text(16)];
  const promptB = [BOS_ID, ...text(5), IMAGE_ID];
  const seq = (prompt: number[], images: number, cont: number[], envAt = -1): Seq => {
    const tokens = [...prompt, ...cont];
    const imgs = [...Array(images)].map(() => view);
    for (const t of cont) if (t === IMAGE_ID) imgs.push(randomView(rng, size, rng.int(0, 2) ? 3 : 1));
    const mask = tokens.map((_, i) => (i < prompt.length || (envAt >= 0 && i >= prompt.length + envAt && i < prompt.length + envAt + 6) ? 0 : 1));
    return { tokens, images: imgs, mask: masked ? mask : undefined };
  };
  const a = [seq(promptA, 1, text(9)), seq(promptA, 1, [...text(4), ...text(2), IMAGE_ID, ...text(3), ...text(24)], 4), seq(promptA, 1, text(36))];
  const b = [seq(promptB, 1, text(3)), seq(promptB, 1, [...text(7), IMAGE_ID, ...text(5)], 6), seq(promptB, 1, text(1)), seq(promptB, 1, text(20))];
  const lone = seq([BOS_ID, ...text(4)], 0, text(11));
  const batch = [a[0], b[0], b[1], lone, a[1], b[2], a[2], b[3]];
  return { batch, groups: [{ seqs: [0, 4, 6], length: promptA.length }, { seqs: [1, 2, 5, 7], length: promptB.length }], prompts: [promptA, promptB] };
}

const expanded = (tokens: number[], np: number): number => tokens.reduce((s, t) => s + (t === IMAGE_ID ? np : 1), 0);

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

describe('forward/backward with shared prefixes', () => {
  const policy = NativePolicy.create(TEST_CONFIG, { seed: 4 });
  randomizeWeights(policy, 12);
  const np = policy.imageTokens;
  afterAll(() => policy.dispose());

  /** Runs forward + backward and returns outputs and every gradient (zeroed before). */
  async function run(batch: Seq[], prefixGroups: PrefixGroup[] | undefined, dlogp: number[][], dentropy: number[][], tau: number) {
    await policy.zeroGrad();
    const out = await policy.forward(batch, { temperature: tau, requireGrad: true, prefixGroups });
    await policy.backward({ dlogp, dentropy });
    const grads = new Map(policy.parameters().map((t) => [t.name, policy.getGradient(t.name)]));
    return { ...out, grads };
  }

  test.each([
    ['GRPO masks', true],
    ['every token scored', false],
  ])('outputs and gradients equal the unshared batch (%s)', async (_, masked) => {
    const rng = new Rng(masked ? 31 : 32);
    const { batch, groups, prompts } = groupedBatch(rng, policy.config.imageSize, masked as boolean);
    const dl = batch.map((s) => s.tokens.map(() => rng.normal()));
    const de = batch.map((s) => s.tokens.map(() => 0.3 * rng.normal()));
    const plain = await run(batch, undefined, dl, de, 0.8);
    const shared = await run(batch, groups, dl, de, 0.8);
    // prefix segments are the prompts less their last token (left to each continuation)
    const saved = groups.reduce((s, g, k) => s + (g.seqs.length - 1) * expanded(prompts[k].slice(0, -1), np), 0);
    expect(shared.positions).toBe(plain.positions);
    expect(plain.rows).toBe(plain.positions);
    expect(shared.rows).toBe(plain.positions - saved);
    expect(shared.scored).toBe(plain.scored);
    batch.forEach((s, i) => {
      expect(shared.logp[i].length).toBe(s.tokens.length);
      expect(maxAbsDiff(shared.logp[i], plain.logp[i])).toBeLessThanOrEqual(1e-5);
      expect(maxAbsDiff(shared.entropy[i], plain.entropy[i])).toBeLessThanOrEqual(1e-5);
      for (let t = 0; t < s.tokens.length; t++) if (plain.logp[i][t] === 0) expect(shared.logp[i][t]).toBe(0); // unscored stay 0
    });
    for (const [name, g] of plain.grads) {
      const mx = g.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      expect(mx).toBeGreaterThan(0);
      const err = maxAbsDiff(shared.grads.get(name)!, g) / mx;
      if (!(err <= 1e-5)) throw new Error(`${name}: shared gradient differs by ${err} of its max`);
    }
    // deterministic: the same shared call again is bit-identical
    const again = await run(batch, groups, dl, de, 0.8);
    expect(Array.from(again.logp[4])).toEqual(Array.from(shared.logp[4]));
    expect(Array.from(again.grads.get('h.0.attn.c_attn.weight')!)).toEqual(Array.from(shared.grads.get('h.0.attn.c_attn.weight')!));
  });

  test('omitted length = the longest common prefix; a shorter length is exact too', async () => {
    const rng = new Rng(33);
    const { batch, groups } = groupedBatch(rng, policy.config.imageSize, true);
    const auto = await policy.forward(batch, { prefixGroups: groups.map((g) => ({ seqs: g.seqs })) });
    const given = await policy.forward(batch, { prefixGroups: groups });
    // sampled tokens may coincide past the prompt: auto shares at least the prompt
    expect(auto.rows).toBeLessThanOrEqual(given.rows);
    const short = await policy.forward(batch, { prefixGroups: groups.map((g) => ({ seqs: g.seqs, length: 3 })) });
    const plain = await policy.forward(batch);
    expect(short.rows).toBeLessThan(plain.rows);
    batch.forEach((_, i) => {
      expect(maxAbsDiff(auto.logp[i], plain.logp[i])).toBeLessThanOrEqual(1e-5);
      expect(maxAbsDiff(short.logp[i], plain.logp[i])).toBeLessThanOrEqual(1e-5);
    });
  });

  test('degenerate groups share nothing and change nothing: length 0 or 1, a group of one, no group', async () => {
    const rng = new Rng(34);
    const { batch, groups } = groupedBatch(rng, policy.config.imageSize, false);
    const plain = await policy.forward(batch);
    for (const prefixGroups of [[{ seqs: groups[0].seqs, length: 0 }], [{ seqs: groups[1].seqs, length: 1 }], [{ seqs: [3] }, { seqs: [6], length: 20 }], []]) {
      const r = await policy.forward(batch, { prefixGroups });
      expect(r.rows).toBe(plain.positions);
      batch.forEach((_, i) => expect(Array.from(r.logp[i])).toEqual(Array.from(plain.logp[i])));
    }
  });

  test('sync and async native calls agree bit for bit', async () => {
    const fns = nativePolicyFunctions();
    const rng = new Rng(35);
    const cfg = policy.config;
    const { batch, groups } = groupedBatch(rng, cfg.imageSize, true);
    const raw = packBatch(cfg, batch, 'batch', true);
    const shared = rawPrefixGroups(raw, cfg.imageSize * cfg.imageSize * cfg.channels, groups);
    const model = fns.policyCreate({ ...cfg, imageId: IMAGE_ID, seed: 5 });
    try {
      const sync = fns.policyForward({ model, ...raw, ...shared, temperature: 0.9 });
      const async_ = await fns.policyForwardAsync({ model, ...raw, ...shared, temperature: 0.9 });
      const plain = await fns.policyForwardAsync({ model, ...raw, temperature: 0.9 });
      expect(Array.from(async_.logp)).toEqual(Array.from(sync.logp));
      expect(Array.from(async_.entropy)).toEqual(Array.from(sync.entropy));
      expect([async_.rows, async_.scored]).toEqual([sync.rows, sync.scored]);
      expect(sync.rows).toBeLessThan(plain.rows);
      expect(maxAbsDiff(sync.logp, plain.logp)).toBeLessThanOrEqual(1e-5);
    } finally {
      fns.policyDispose({ model });
    }
  });
});

test('shared-prefix gradients match finite differences of the float64 reference', async () => {
  const policy = NativePolicy.create({ ...TEST_CONFIG, dModel: 16, nHead: 2, maxSeq: 48 }, { seed: 2 });
  randomizeWeights(policy, 22);
  const cfg = policy.config;
  const rng = new Rng(41);
  const view = randomView(rng, cfg.imageSize);
  const prompt = [BOS_ID, 70, 71, IMAGE_ID, 72, 73];
  const batch: Seq[] = [[80, 81, 82], [83, IMAGE_ID, 84], [85, 86, 87, 88, 89]].map((c) => ({
    tokens: [...prompt, ...c],
    images: c.includes(IMAGE_ID) ? [view, randomView(rng, cfg.imageSize)] : [view],
    mask: [...prompt.map((_, i) => (i > 3 ? 1 : 0)), ...c.map(() => 1)],
  }));
  const wl = batch.map((s) => s.tokens.map(() => rng.normal()));
  const we = batch.map((s) => s.tokens.map(() => 0.3 * rng.normal()));
  const tau = 0.9;
  const P = paramsF64(policy);
  const loss = refWeightedLogprobLoss(cfg, batch, wl, we, tau);
  await policy.zeroGrad();
  const out = await policy.forward(batch, { temperature: tau, requireGrad: true, prefixGroups: [{ seqs: [0, 1, 2], length: prompt.length }] });
  expect(out.rows).toBeLessThan(out.positions);
  await policy.backward({ dlogp: wl, dentropy: we });
  const d = cfg.dModel;
  const picks: [string, number[]][] = [
    ['wte.weight', [70 * d + 3, 72 * d + 5, 84 * d + 1]],
    ['wpe.weight', [2 * d + 1, 5 * d + 7, 9 * d + 2]],
    ['patch_embed.weight', [5, 77, 301]],
    ['patch_pos.weight', [3, 20, 50]],
    ['h.0.attn.c_attn.weight', [7, 300, 700]],
    ['h.1.attn.c_attn.bias', [2, 20, 40]],
    ['h.0.mlp.c_fc.weight', [11, 400]],
    ['h.1.ln_1.weight', [1, 9]],
    ['ln_f.bias', [4, 12]],
  ];
  for (const [name, idx] of picks) {
    const g = policy.getGradient(name);
    const x = P.get(name)!;
    for (const i of idx) {
      const h = 1e-4;
      const orig = x[i];
      x[i] = orig + h;
      const lp = loss(P);
      x[i] = orig - h;
      const lm = loss(P);
      x[i] = orig;
      const fd = (lp - lm) / (2 * h);
      const err = Math.abs(g[i] - fd) / Math.max(Math.abs(fd), 1e-2);
      if (!(err < 2e-3)) throw new Error(`${name}[${i}]: shared-prefix gradient ${g[i]} vs finite difference ${fd} (rel ${err})`);
    }
  }
  policy.dispose();
});
