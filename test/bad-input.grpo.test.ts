// grpoAdvantages / grpoLoss reject bad arguments with a typed error naming them.
import { grpoAdvantages, grpoAdvantagesAsync, grpoLoss, grpoLossAsync, loadNative } from '../src/native';
import type { GrpoLossArgs } from '../src/native';
import { expectRejects, expectThrows } from './helpers/errors';

const native = loadNative() as unknown as Record<string, (a: unknown) => unknown>;
const B = 2, T = 3;
const any = (x: unknown) => x as never;
const good = (): GrpoLossArgs => ({
  logp: new Float32Array(B * T).fill(-1),
  oldLogp: new Float32Array(B * T).fill(-1.1),
  mask: new Float32Array(B * T).fill(1),
  rewards: Float32Array.from([1, 0]),
  groups: Int32Array.from([0, 0]),
  seqLen: T,
});
const withNaN = (n: number, at: number) => {
  const a = new Float32Array(n).fill(-1);
  a[at] = NaN;
  return a;
};

describe('bad input: grpo', () => {
  it('grpoAdvantages names its arguments', async () => {
    const rewards = Float32Array.from([1, 2, 3]);
    expectThrows(() => native.grpoAdvantages('x'), 'TypeError', /options object/);
    expectThrows(() => grpoAdvantages({ rewards, groups: new Int32Array(2) }), 'RangeError', /length 3 for `groups`/);
    expectThrows(() => grpoAdvantages({ rewards, groups: any(new Float32Array(3)) }), 'TypeError', /Int32Array for `groups`/);
    expectThrows(() => grpoAdvantages({ rewards: any([1, 2, 3]), groups: new Int32Array(3) }), 'TypeError', /`rewards`/);
    expectThrows(() => grpoAdvantages({ rewards: Float32Array.from([1, NaN, 3]), groups: new Int32Array(3) }), 'RangeError', /finite values in `rewards` but element 1 is NaN/);
    expectThrows(() => grpoAdvantages({ rewards: Float32Array.from([1, Infinity, 3]), groups: new Int32Array(3) }), 'RangeError', /`rewards`.*infinite/);
    expectThrows(() => grpoAdvantages({ rewards, groups: new Int32Array(3), scale: any('mad') }), 'TypeError', /one of 'std', 'none' for `scale`/);
    expectThrows(() => grpoAdvantages({ rewards, groups: new Int32Array(3), advantages: new Float32Array(1) }), 'RangeError', /`advantages`/);
    await expectRejects(grpoAdvantagesAsync({ rewards, groups: new Int32Array(1) }), 'RangeError', /`groups`/);
  });

  it('grpoLoss names its arguments', async () => {
    expect(() => grpoLoss(good())).not.toThrow();
    expectThrows(() => native.grpoLoss(undefined), 'TypeError', /options object/);
    expectThrows(() => grpoLoss({ ...good(), logp: new Float32Array(5) }), 'RangeError', /length 6 for `logp` but received length 5/);
    expectThrows(() => grpoLoss({ ...good(), oldLogp: any(new Float64Array(6)) }), 'TypeError', /`oldLogp`/);
    expectThrows(() => grpoLoss({ ...good(), refLogp: new Float32Array(7) }), 'RangeError', /`refLogp`/);
    expectThrows(() => grpoLoss({ ...good(), mask: any(new Uint8Array(6)) }), 'TypeError', /`mask`/);
    expectThrows(() => grpoLoss({ ...good(), entropy: new Float32Array(1) }), 'RangeError', /`entropy`/);
    expectThrows(() => grpoLoss({ ...good(), dlogp: new Float32Array(1) }), 'RangeError', /`dlogp`/);
    expectThrows(() => grpoLoss({ ...good(), seqLen: 2.5 }), 'TypeError', /integer for `seqLen`/);
    expectThrows(() => grpoLoss({ ...good(), seqLen: -1 }), 'RangeError', /`seqLen`/);
    expectThrows(() => grpoLoss({ ...good(), seqLen: any(undefined) }), 'TypeError', /`seqLen`/);
    expectThrows(() => grpoLoss({ ...good(), batch: 3 }), 'RangeError', /`logp`/);
    expectThrows(() => grpoLoss({ ...good(), batch: any('2') }), 'TypeError', /`batch`/);
    expectThrows(() => grpoLoss({ ...good(), rewards: Float32Array.from([NaN, 0]) }), 'RangeError', /`rewards` but element 0 is NaN/);
    expectThrows(() => grpoLoss({ ...good(), groups: undefined }), 'TypeError', /`groups`/);
    expectThrows(() => grpoLoss({ ...good(), rewards: any([1, 0]) }), 'TypeError', /Float32Array for `rewards` but received an Array/);
    expectThrows(() => grpoLoss({ ...good(), rewards: undefined, groups: undefined }), 'TypeError', /`rewards`.*`advantages` but received neither/);
    expectThrows(() => grpoLoss({ ...good(), advantages: Float32Array.from([1, -1]) }), 'TypeError', /either `rewards`.*`advantages`, not both/);
    expectThrows(() => grpoLoss({ ...good(), rewards: undefined, groups: undefined, advantages: Float32Array.from([1, NaN]) }), 'RangeError', /finite values in `advantages` but element 1 is NaN/);
    expectThrows(() => grpoLoss({ ...good(), epsLow: 1.5 }), 'RangeError', /`epsLow`/);
    expectThrows(() => grpoLoss({ ...good(), epsHigh: -0.1 }), 'RangeError', /`epsHigh`/);
    expectThrows(() => grpoLoss({ ...good(), dualClip: NaN }), 'RangeError', /`dualClip`/);
    expectThrows(() => grpoLoss({ ...good(), beta: -1 }), 'RangeError', /`beta`/);
    expectThrows(() => grpoLoss({ ...good(), beta: 0.1 }), 'TypeError', /`refLogp` \(required when `beta` > 0\)/);
    expectThrows(() => grpoLoss({ ...good(), kl: any('k4') }), 'TypeError', /one of 'k1', 'k2', 'k3' for `kl`/);
    expectThrows(() => grpoLoss({ ...good(), lossAgg: any('mean') }), 'TypeError', /for `lossAgg` but received 'mean'/);
    expectThrows(() => grpoLoss({ ...good(), scale: any(1) }), 'TypeError', /`scale`/);
    expectThrows(() => grpoLoss({ ...good(), tNorm: 0 }), 'RangeError', /`tNorm`/);
    const badMask = new Float32Array(B * T).fill(1);
    badMask[4] = -1;
    expectThrows(() => grpoLoss({ ...good(), mask: badMask }), 'RangeError', /non-negative weights .* in `mask` but element 4/);
    badMask[4] = NaN;
    expectThrows(() => grpoLoss({ ...good(), mask: badMask }), 'RangeError', /`mask` but element 4/);
    expectThrows(() => grpoLoss({ ...good(), logp: withNaN(6, 2) }), 'RangeError', /finite values in `logp` where `mask` > 0 but element 2 is NaN/);
    expectThrows(() => grpoLoss({ ...good(), oldLogp: withNaN(6, 5) }), 'RangeError', /`oldLogp` where `mask` > 0 but element 5/);
    expectThrows(() => grpoLoss({ ...good(), refLogp: withNaN(6, 0), beta: 0.1 }), 'RangeError', /`refLogp` where `mask` > 0/);
    expectThrows(() => grpoLoss({ ...good(), entropy: withNaN(6, 3) }), 'RangeError', /`entropy` where `mask` > 0/);
    const det = new Float32Array(B * T);
    structuredClone(det.buffer, { transfer: [det.buffer] });
    expectThrows(() => grpoLoss({ ...good(), mask: det }), 'RangeError', /`mask`.*detached/);
    await expectRejects(grpoLossAsync({ ...good(), kl: any('kl') }), 'TypeError', /`kl`/);
    await expectRejects(grpoLossAsync({ ...good(), logp: withNaN(6, 1) }), 'RangeError', /`logp`/);
  });
});
