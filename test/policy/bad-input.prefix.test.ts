// Bad shared-prefix options (forward's prefixGroups; the addon's prefixGroup/prefixLength): each
// throws TypeError/RangeError naming the argument before any work, and the model stays usable.
import { nativePolicyFunctions } from '../../src/native/policy';
import { NativePolicy } from '../../src/policy';
import { IMAGE_ID } from '../../src/tokenizer';
import { expectRejects, expectThrows } from '../helpers/errors';
import { Rng } from '../helpers/random';
import { TEST_CONFIG, randomView } from './common';

const fns = nativePolicyFunctions();
const call = <T>(fn: () => Promise<T>): Promise<T> => Promise.resolve().then(fn);
const CFG = { vocabSize: 268, dModel: 16, nLayer: 1, nHead: 2, maxSeq: 32, patch: 8, imageSize: 16, channels: 3, imageId: IMAGE_ID };

describe('policyForward prefixGroup / prefixLength (raw)', () => {
  const model = fns.policyCreate(CFG);
  const img = new Uint8Array(16 * 16 * 3).fill(7);
  // three sequences [256, IMAGE, 65, 66, x]: identical for 4 tokens, then 67 / 68 / 69
  const tokens = Int32Array.from([256, IMAGE_ID, 65, 66, 67, 256, IMAGE_ID, 65, 66, 68, 256, IMAGE_ID, 65, 66, 69]);
  const ok = { model, tokens, lengths: Int32Array.from([5, 5, 5]), images: new Uint8Array([...img, ...img, ...img]), nImages: 3 };
  const group = Int32Array.from([0, 0, 0]);
  afterAll(() => fns.policyDispose({ model }));

  test('shapes and ranges', async () => {
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, prefixGroup: group })), 'TypeError', /`prefixLength`/);
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, prefixLength: Int32Array.from([4]) })), 'TypeError', /`prefixGroup`/);
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, prefixGroup: Float32Array.from([0, 0, 0]) as unknown as Int32Array, prefixLength: Int32Array.from([4]) })), 'TypeError', /`prefixGroup`/);
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, prefixGroup: Int32Array.from([0, 0]), prefixLength: Int32Array.from([4]) })), 'RangeError', /`prefixGroup`/);
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, prefixGroup: Int32Array.from([0, 1, 0]), prefixLength: Int32Array.from([4]) })), 'RangeError', /`prefixGroup`/);
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, prefixGroup: Int32Array.from([0, -2, 0]), prefixLength: Int32Array.from([4]) })), 'RangeError', /`prefixGroup`/);
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, prefixGroup: group, prefixLength: Int32Array.from([-1]) })), 'RangeError', /`prefixLength`/);
    // group 1 has no sequence
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, prefixGroup: group, prefixLength: Int32Array.from([4, 2]) })), 'RangeError', /group 1 has no sequence.*`prefixGroup`/);
    // longer than the sequences
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, prefixGroup: group, prefixLength: Int32Array.from([6]) })), 'RangeError', /`prefixLength`/);
  });

  test('the shared tokens must be identical: ids, images, mask', async () => {
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, prefixGroup: group, prefixLength: Int32Array.from([5]) })), 'RangeError', /ids at token 4.*`prefixLength`/);
    const other = new Uint8Array(ok.images);
    other[2 * img.length + 100] ^= 1;
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, images: other, prefixGroup: group, prefixLength: Int32Array.from([4]) })), 'RangeError', /sequences 0 and 2 .*image at token 1.*`prefixLength`/);
    const mask = Int32Array.from([0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1]);
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, mask, prefixGroup: group, prefixLength: Int32Array.from([4]) })), 'RangeError', /mask at token 2.*`prefixLength`/);
    // the valid call still runs (nothing left busy)
    const r = await fns.policyForwardAsync({ ...ok, prefixGroup: group, prefixLength: Int32Array.from([4]) });
    expect(r.rows).toBe(3 * (5 + 3) - 2 * (1 + 4 + 1));
    expectThrows(() => fns.policyForward({ ...ok, prefixGroup: group, prefixLength: Int32Array.from([5]) }), 'RangeError', /`prefixLength`/);
  });
});

describe('NativePolicy.forward prefixGroups', () => {
  const policy = NativePolicy.create(TEST_CONFIG, { seed: 1 });
  const view = randomView(new Rng(2), policy.config.imageSize);
  const batch = [66, 67, 68].map((x) => ({ tokens: [256, IMAGE_ID, 65, x], images: [view] }));
  afterAll(() => policy.dispose());

  test('each mistake names its field', async () => {
    const bad = (prefixGroups: unknown) => policy.forward(batch, { prefixGroups: prefixGroups as never });
    await expectRejects(bad({ seqs: [0, 1] }), 'TypeError', /`prefixGroups`/);
    await expectRejects(bad([{ length: 2 }]), 'TypeError', /`prefixGroups\[0\]`/);
    await expectRejects(bad([{ seqs: [] }]), 'RangeError', /`prefixGroups\[0\]\.seqs`/);
    await expectRejects(bad([{ seqs: [0, 3] }]), 'RangeError', /`prefixGroups\[0\]\.seqs`/);
    await expectRejects(bad([{ seqs: [0, 1.5] }]), 'RangeError', /`prefixGroups\[0\]\.seqs`/);
    await expectRejects(bad([{ seqs: [0, 1] }, { seqs: [2, 1] }]), 'RangeError', /Sequence 1 is in `prefixGroups\[0\]` and `prefixGroups\[1\]`/);
    await expectRejects(bad([{ seqs: [0, 1], length: -1 }]), 'RangeError', /`prefixGroups\[0\]\.length`/);
    await expectRejects(bad([{ seqs: [0, 1], length: 2.5 }]), 'RangeError', /`prefixGroups\[0\]\.length`/);
    await expectRejects(bad([{ seqs: [0, 1, 2], length: 4 }]), 'RangeError', /`prefixGroups\[0\]\.length` <= 3/);
    const grey = { ...view, data: view.data.slice() };
    grey.data[5] ^= 1;
    await expectRejects(
      policy.forward([batch[0], { ...batch[1], images: [grey] }], { prefixGroups: [{ seqs: [0, 1], length: 2 }] }),
      'RangeError',
      /`prefixGroups\[0\]\.length` <= 1/,
    );
    const r = await policy.forward(batch, { prefixGroups: [{ seqs: [0, 1, 2], length: 3 }] });
    expect(r.rows).toBeLessThan(r.positions);
  });
});
