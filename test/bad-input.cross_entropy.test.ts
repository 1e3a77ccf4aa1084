// crossEntropy / crossEntropyBackward reject bad arguments with a typed error naming them.
import { crossEntropy, crossEntropyAsync, crossEntropyBackward, crossEntropyBackwardAsync, loadNative } from '../src/native';
import { expectRejects, expectThrows } from './helpers/errors';

const native = loadNative() as unknown as Record<string, (a: unknown) => unknown>;
const N = 2, V = 4;
const any = (x: unknown) => x as never;
const good = () => ({ logits: new Float32Array(N * V), targets: Int32Array.from([3, -100]), vocab: V });

describe('bad input: cross_entropy', () => {
  it('crossEntropy names its arguments', async () => {
    expectThrows(() => native.crossEntropy([]), 'TypeError', /options object/);
    expectThrows(() => crossEntropy({ ...good(), logits: new Float32Array(7) }), 'RangeError', /length 8 for `logits`/);
    expectThrows(() => crossEntropy({ ...good(), targets: Int32Array.from([4, 0]) }), 'RangeError', /`targets` but element 0 is 4/);
    expectThrows(() => crossEntropy({ ...good(), targets: any(Uint32Array.from([0, 0])) }), 'TypeError', /Int32Array for `targets` but received Uint32Array/);
    expectThrows(() => crossEntropy({ ...good(), vocab: 1.5 }), 'TypeError', /`vocab`/);
    expectThrows(() => crossEntropy({ ...good(), reduction: any('none') }), 'TypeError', /one of 'mean', 'sum' for `reduction`/);
    expectThrows(() => crossEntropy({ ...good(), temperature: 0 }), 'RangeError', /`temperature`/);
    expectThrows(() => crossEntropy({ ...good(), dloss: NaN, withGrad: true }), 'RangeError', /`dloss`/);
    expectThrows(() => crossEntropy({ ...good(), dlogits: new Float32Array(3) }), 'RangeError', /`dlogits`/);
    expectThrows(() => crossEntropy({ ...good(), lse: new Float32Array(3) }), 'RangeError', /`lse`/);
    expectThrows(() => crossEntropy({ ...good(), accumulate: any(0) }), 'TypeError', /`accumulate`/);
    const det = new Float32Array(N * V);
    structuredClone(det.buffer, { transfer: [det.buffer] });
    expectThrows(() => crossEntropy({ ...good(), logits: det }), 'RangeError', /`logits`.*detached/);
    await expectRejects(crossEntropyAsync({ ...good(), targets: Int32Array.from([0, 9]) }), 'RangeError', /`targets` but element 1 is 9/);
  });

  it('crossEntropyBackward names its arguments', async () => {
    expectThrows(() => native.crossEntropyBackward({ ...good() }), 'TypeError', /`dlogits`/);
    expectThrows(() => crossEntropyBackward({ ...good(), dlogits: new Float32Array(9) }), 'RangeError', /`dlogits`/);
    expectThrows(() => crossEntropyBackward({ ...good(), lse: any([1, 2]) }), 'TypeError', /`lse`/);
    expectThrows(() => crossEntropyBackward({ ...good(), dloss: any('1') }), 'TypeError', /`dloss`/);
    expectThrows(() => crossEntropyBackward({ ...good(), targets: Int32Array.from([0, 2 ** 31 - 1]) }), 'RangeError', /`targets`/);
    await expectRejects(crossEntropyBackwardAsync({ ...good(), reduction: any('avg') }), 'TypeError', /`reduction`/);
  });
});
