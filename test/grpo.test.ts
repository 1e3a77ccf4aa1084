import { grpoAdvantages, grpoAdvantagesAsync, grpoLoss, grpoLossAsync, setNumThreads, GRPO_DEFAULTS } from '../src/native';
import type { GrpoLossAgg, GrpoKl } from '../src/native';
import { Rng } from './helpers/random';
import { expectClose, finiteDiff, toF64 } from './helpers/compare';
import { advantagesRef, lossRef, metricsRef, LossIn, LossOpts } from './helpers/ref_grpo';

const sameBits = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer).equals(Buffer.from(b.buffer));
const AGGS: GrpoLossAgg[] = ['token-mean', 'seq-mean-token-mean', 'seq-mean-token-sum', 'seq-mean-token-sum-norm'];
const KLS: GrpoKl[] = ['k1', 'k2', 'k3'];

/** Log-ratios spread over every region (clipped low/high, inside, beyond the dual clip), away from kinks. */
function logRatio(rng: Rng, kinks: number[]): number {
  for (;;) {
    const v = rng.uniform(-0.9, 1.6);
    if (kinks.every((k) => Math.abs(v - k) > 0.01)) return v;
  }
}

function makeBatch(seed: number, B: number, T: number, o: { epsLow: number; epsHigh: number; dualClip: number }) {
  const rng = new Rng(seed);
  const kinks = [Math.log(1 - o.epsLow), Math.log(1 + o.epsHigh), Math.log(Math.max(o.dualClip, 1e-9))];
  const logp = new Float32Array(B * T), oldLogp = new Float32Array(B * T), refLogp = new Float32Array(B * T);
  const mask = new Float32Array(B * T), entropy = new Float32Array(B * T);
  for (let j = 0; j < B * T; j++) {
    logp[j] = -Math.abs(rng.normal()) * 2;
    oldLogp[j] = logp[j] - logRatio(rng, kinks);
    refLogp[j] = logp[j] + rng.normal() * 0.4;
    mask[j] = rng.next() < 0.8 ? 1 : 0;
    entropy[j] = rng.uniform(0, 3);
  }
  // Make sure every branch occurs: per row, one token beyond the dual clip / high clip (rho = 4.06),
  // one below the low clip (rho = 0.55) and one inside the clip range.
  for (let i = 0; i < B && T >= 3; i++) {
    [1.4, -0.6, 0.05].forEach((lr, t) => {
      oldLogp[i * T + t] = logp[i * T + t] - lr;
      mask[i * T + t] = 1;
    });
  }
  const groups = Int32Array.from({ length: B }, (_, i) => [7, -3, 1_000_000][i % 3]); // interleaved, arbitrary ids
  const rewards = Float32Array.from({ length: B }, () => rng.int(0, 3) + rng.uniform(0, 0.5));
  return { logp, oldLogp, refLogp, mask, entropy, groups, rewards };
}

const base = { epsLow: 0.2, epsHigh: 0.28, dualClip: 3 };

describe('grpoAdvantages', () => {
  it.each(['std', 'none'] as const)('matches SPEC §2 (scale %s) with arbitrary, interleaved group ids', (scale) => {
    const rng = new Rng(3);
    const B = 41;
    const ids = [5, -17, 2 ** 31 - 1, -(2 ** 31), 0, 12];
    const groups = Int32Array.from({ length: B }, () => ids[rng.int(0, ids.length)]);
    groups[40] = 999; // a group of one
    const rewards = rng.f32(B);
    for (let i = 0; i < B; i++) if (groups[i] === 12) rewards[i] = 0.5; // a group with all-equal rewards
    const ref = advantagesRef(rewards, groups, scale);
    for (const reference of [false, true]) {
      const out = grpoAdvantages({ rewards, groups, scale, reference });
      expectClose(out.advantages, ref.adv, 1e-6, 1e-6);
      expect(out.numGroups).toBe(ref.numGroups);
      expect(out.equalRewardGroups).toBe(ref.equalRewardGroups);
      expect(out.equalRewardGroups).toBe(2); // the singleton and the all-equal group
      expect(out.advantages[40]).toBe(0);
      for (let i = 0; i < B; i++) if (groups[i] === 12) expect(out.advantages[i]).toBe(0);
    }
  });

  it('all-equal rewards give exactly zero advantages and are counted; std uses Bessel and eps 1e-6', async () => {
    const rewards = Float32Array.from([0.1, 0.1, 0.1, 1, 0, 3, 3]);
    const groups = Int32Array.from([4, 4, 4, 9, 9, 2, 2]);
    const out = grpoAdvantages({ rewards, groups });
    expect(Array.from(out.advantages.subarray(0, 3))).toEqual([0, 0, 0]);
    expect(Array.from(out.advantages.subarray(5))).toEqual([0, 0]);
    expect(out.numGroups).toBe(3);
    expect(out.equalRewardGroups).toBe(2);
    const std = Math.sqrt(0.5); // rewards 1, 0: mean 0.5, Bessel variance 0.5
    expect(out.advantages[3]).toBeCloseTo(0.5 / (std + 1e-6), 6);
    expect(out.advantages[4]).toBeCloseTo(-0.5 / (std + 1e-6), 6);
    const none = await grpoAdvantagesAsync({ rewards, groups, scale: 'none' });
    expect(Array.from(none.advantages)).toEqual([0, 0, 0, 0.5, -0.5, 0, 0]);
  });
});

describe.each(AGGS)('grpoLoss (%s)', (lossAgg) => {
  const B = 6, T = 9;
  const cases: [string, Partial<LossOpts>, boolean][] = [
    ['beta 0, no ref', { beta: 0 }, false],
    ...KLS.map((kl): [string, Partial<LossOpts>, boolean] => [`beta 0.3, ${kl}`, { beta: 0.3, kl }, true]),
    ['dual clip off (c = 1)', { beta: 0.1, kl: 'k3', dualClip: 1 }, true],
    ['eps 0.1 / 0.5, tNorm 20', { epsLow: 0.1, epsHigh: 0.5, tNorm: 20, beta: 0 }, false],
  ];

  it.each(cases)('loss, dlogp and metrics match the float64 reference and finite differences: %s', (_, extra, withRef) => {
    const o: LossOpts = { ...base, beta: 0, kl: 'k3', lossAgg, ...extra };
    const d = makeBatch(17, B, T, o);
    d.mask.fill(1, 2 * T, 3 * T); // row 2 fully kept
    d.mask.fill(0, 4 * T, 5 * T); // row 4 fully masked
    const { adv } = advantagesRef(d.rewards, d.groups, 'std');
    const x: LossIn = { logp: d.logp, oldLogp: d.oldLogp, refLogp: withRef ? d.refLogp : undefined, mask: d.mask, adv, entropy: d.entropy, B, T };
    for (const reference of [false, true]) {
      const out = grpoLoss({
        logp: d.logp, oldLogp: d.oldLogp, refLogp: withRef ? d.refLogp : undefined, mask: d.mask, entropy: d.entropy,
        rewards: d.rewards, groups: d.groups, seqLen: T, ...o, reference,
      });
      expectClose(out.advantages, adv, 1e-6, 1e-6);
      expectClose([out.loss], [lossRef(x, o)], 1e-6, 1e-6);
      const fd = Array.from({ length: B * T }, (_, i) => finiteDiff((v) => lossRef(x, o, v), toF64(d.logp), i));
      expectClose(out.dlogp, fd, 2e-5, 1e-5);
      for (let j = 0; j < B * T; j++) if (d.mask[j] === 0) expect(out.dlogp[j]).toBe(0);
      const m = metricsRef(x, o);
      const { numGroups, equalRewardGroups, kl, entropy, ...rest } = out.metrics;
      const { kl: klRef, entropy: entRef, ...restRef } = m;
      for (const k of Object.keys(restRef) as (keyof typeof restRef)[]) expect(rest[k]).toBeCloseTo(restRef[k], 10);
      if (withRef) expect(kl!).toBeCloseTo(klRef!, 8);
      else expect(kl).toBeNull();
      expect(entropy!).toBeCloseTo(entRef!, 6);
      expect(numGroups).toBe(3);
      expect(equalRewardGroups).toBe(advantagesRef(d.rewards, d.groups).equalRewardGroups);
      // every branch of the loss is exercised by this batch
      expect(m.clipFracLow).toBeGreaterThan(0);
      expect(m.clipFracHigh).toBeGreaterThan(0);
      if (o.dualClip > 1) expect(m.dualClipFrac).toBeGreaterThan(0);
      else expect(out.metrics.dualClipFrac).toBe(0);
    }
  });

  it('zero mask: loss 0, zero gradient, zero metrics, no NaN', () => {
    const d = makeBatch(5, 3, 4, base);
    d.mask.fill(0);
    d.logp[0] = NaN; // masked tokens are never read
    d.oldLogp[1] = -Infinity;
    const out = grpoLoss({ ...d, refLogp: d.refLogp, beta: 0.2, seqLen: 4, lossAgg });
    expect(out.loss).toBe(0);
    expect(out.dlogp.every((v) => v === 0)).toBe(true);
    expect([out.metrics.clipFracLow, out.metrics.clipFracHigh, out.metrics.dualClipFrac, out.metrics.approxKl,
      out.metrics.kl, out.metrics.entropy, out.metrics.maskSum]).toEqual([0, 0, 0, 0, 0, 0, 0]);
  });
});

describe('grpoLoss options', () => {
  const B = 5, T = 7;
  const d = makeBatch(23, B, T, base);
  const { adv } = advantagesRef(d.rewards, d.groups);

  it('uses the SPEC defaults', () => {
    expect(GRPO_DEFAULTS).toEqual({ epsLow: 0.2, epsHigh: 0.2, dualClip: 3, beta: 0, kl: 'k3', lossAgg: 'token-mean', scale: 'std' });
    const o: LossOpts = { epsLow: 0.2, epsHigh: 0.2, dualClip: 3, beta: 0, kl: 'k3', lossAgg: 'token-mean' };
    const out = grpoLoss({ logp: d.logp, oldLogp: d.oldLogp, mask: d.mask, rewards: d.rewards, groups: d.groups, seqLen: T });
    const x: LossIn = { logp: d.logp, oldLogp: d.oldLogp, mask: d.mask, adv, B, T };
    expectClose([out.loss], [lossRef(x, o)], 1e-6, 1e-6);
    expect(out.metrics.entropy).toBeNull();
    expect(out.metrics.kl).toBeNull();
  });

  it('precomputed advantages give the same result as rewards + groups; scale none changes them', () => {
    const a = grpoLoss({ ...d, seqLen: T, beta: 0.05 });
    const b = grpoLoss({ logp: d.logp, oldLogp: d.oldLogp, refLogp: d.refLogp, mask: d.mask, entropy: d.entropy,
      advantages: a.advantages, seqLen: T, beta: 0.05 });
    expect(b.loss).toBe(a.loss);
    expect(sameBits(a.dlogp, b.dlogp)).toBe(true);
    expect(b.metrics.numGroups).toBeNull();
    const c = grpoLoss({ ...d, seqLen: T, scale: 'none' });
    expectClose(c.advantages, advantagesRef(d.rewards, d.groups, 'none').adv, 1e-6, 1e-6);
  });

  it('fractional mask weights act as token weights', () => {
    const mask = Float32Array.from(d.mask, (m, j) => m * (0.25 + (j % 4) * 0.5));
    const o: LossOpts = { ...base, beta: 0.1, kl: 'k2', lossAgg: 'seq-mean-token-mean' };
    const out = grpoLoss({ ...d, mask, seqLen: T, ...o });
    const x: LossIn = { logp: d.logp, oldLogp: d.oldLogp, refLogp: d.refLogp, mask, adv, B, T };
    expectClose([out.loss], [lossRef(x, o)], 1e-6, 1e-6);
    const fd = Array.from({ length: B * T }, (_, i) => finiteDiff((v) => lossRef(x, o, v), toF64(d.logp), i));
    expectClose(out.dlogp, fd, 2e-5, 1e-5);
  });

  it('is deterministic, async equals sync, and the thread count does not change a bit', async () => {
    const big = makeBatch(31, 64, 300, base);
    const args = { ...big, seqLen: 300, beta: 0.04, lossAgg: 'seq-mean-token-mean' as const };
    const a = grpoLoss(args);
    const b = grpoLoss(args);
    const c = await grpoLossAsync(args);
    setNumThreads(1);
    const e = grpoLoss(args);
    setNumThreads(3);
    const f = grpoLoss(args);
    setNumThreads(0);
    for (const r of [b, c, e, f]) {
      expect(r.loss).toBe(a.loss);
      expect(sameBits(r.dlogp, a.dlogp)).toBe(true);
      expect(r.metrics).toEqual(a.metrics);
    }
  });
});
