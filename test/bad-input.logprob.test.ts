// logprob / logprobBackward / logSoftmax reject bad arguments with a typed error naming them.
import { logprob, logprobAsync, logprobBackward, logprobBackwardAsync, logSoftmax, logSoftmaxAsync, loadNative } from '../src/native';
import { expectRejects, expectThrows } from './helpers/errors';

const native = loadNative() as unknown as Record<string, (a: unknown) => unknown>;
const N = 3, V = 5;
const good = () => ({ logits: new Float32Array(N * V), targets: Int32Array.from([0, 4, -1]), vocab: V });
const detached = (n: number) => {
  const b = new Float32Array(n);
  structuredClone(b.buffer, { transfer: [b.buffer] });
  return b;
};
const any = (x: unknown) => x as never;

describe('bad input: logprob', () => {
  it('rejects wrong types, lengths, dims and ids in the forward', async () => {
    expectThrows(() => native.logprob(undefined), 'TypeError', /options object/);
    expectThrows(() => logprob({ ...good(), logits: any(new Float64Array(N * V)) }), 'TypeError', /Float32Array for `logits` but received Float64Array/);
    expectThrows(() => logprob({ ...good(), logits: new Float32Array(N * V - 1) }), 'RangeError', /length 15 for `logits` but received length 14/);
    expectThrows(() => logprob({ ...good(), targets: any(new Float32Array(3)) }), 'TypeError', /Int32Array for `targets`/);
    expectThrows(() => logprob({ ...good(), targets: any(undefined) }), 'TypeError', /`targets`/);
    expectThrows(() => logprob({ ...good(), targets: Int32Array.from([0, 5, 1]) }), 'RangeError', /`targets` but element 1 is 5/);
    expectThrows(() => logprob({ ...good(), vocab: 2.5 }), 'TypeError', /integer for `vocab`/);
    expectThrows(() => logprob({ ...good(), vocab: 0 }), 'RangeError', /`vocab`/);
    expectThrows(() => logprob({ ...good(), vocab: -3 }), 'RangeError', /`vocab`/);
    expectThrows(() => logprob({ ...good(), vocab: any('5') }), 'TypeError', /`vocab`/);
    expectThrows(() => logprob(any({ logits: new Float32Array(15), targets: new Int32Array(3) })), 'TypeError', /`vocab`/);
    expectThrows(() => logprob({ ...good(), temperature: 0 }), 'RangeError', /`temperature`/);
    expectThrows(() => logprob({ ...good(), temperature: -1 }), 'RangeError', /`temperature`/);
    expectThrows(() => logprob({ ...good(), temperature: NaN }), 'RangeError', /`temperature`/);
    expectThrows(() => logprob({ ...good(), temperature: any('1') }), 'TypeError', /`temperature`/);
    expectThrows(() => logprob({ ...good(), logp: new Float32Array(2) }), 'RangeError', /`logp`/);
    expectThrows(() => logprob({ ...good(), entropy: new Float32Array(4) }), 'RangeError', /`entropy`/);
    expectThrows(() => logprob({ ...good(), lse: any([0, 0, 0]) }), 'TypeError', /`lse`/);
    expectThrows(() => logprob({ ...good(), reference: any(1) }), 'TypeError', /boolean for `reference`/);
    expectThrows(() => logprob({ ...good(), logits: detached(N * V) }), 'RangeError', /`logits`.*detached/);
    await expectRejects(logprobAsync({ ...good(), targets: Int32Array.from([0, 1, 99]) }), 'RangeError', /`targets` but element 2 is 99/);
    await expectRejects(logprobAsync({ ...good(), vocab: any(null) }), 'TypeError', /`vocab`/);
  });

  it('rejects bad arguments in the backward', async () => {
    expectThrows(() => native.logprobBackward(42), 'TypeError', /options object/);
    expectThrows(() => logprobBackward({ ...good(), dlogits: new Float32Array(N * V + 1) }), 'RangeError', /`dlogits`/);
    expectThrows(() => logprobBackward({ ...good(), dlogp: new Float32Array(N + 1) }), 'RangeError', /`dlogp`/);
    expectThrows(() => logprobBackward({ ...good(), dentropy: any(new Int32Array(N)) }), 'TypeError', /`dentropy`/);
    expectThrows(() => logprobBackward({ ...good(), lse: new Float32Array(1) }), 'RangeError', /`lse`/);
    expectThrows(() => logprobBackward({ ...good(), targets: Int32Array.from([7, 0, 0]) }), 'RangeError', /`targets` but element 0 is 7/);
    expectThrows(() => logprobBackward({ ...good(), temperature: 1e9 }), 'RangeError', /`temperature`/);
    expectThrows(() => logprobBackward({ ...good(), accumulate: any('yes') }), 'TypeError', /`accumulate`/);
    expectThrows(() => logprobBackward({ ...good(), dlogits: detached(N * V) }), 'RangeError', /`dlogits`.*detached/);
    expectThrows(() => native.logprobBackward({ ...good() }), 'TypeError', /`dlogits`/);
    await expectRejects(logprobBackwardAsync({ ...good(), dlogp: new Float32Array(1) }), 'RangeError', /`dlogp`/);
  });

  it('rejects bad arguments in logSoftmax', async () => {
    expectThrows(() => logSoftmax({ logits: new Float32Array(7), vocab: 2 }), 'RangeError', /`logits` to be a multiple of `vocab`/);
    expectThrows(() => logSoftmax({ logits: new Float32Array(8), vocab: 2, out: new Float32Array(6) }), 'RangeError', /`out`/);
    expectThrows(() => logSoftmax({ logits: any([1, 2]), vocab: 2 }), 'TypeError', /`logits`/);
    expectThrows(() => logSoftmax({ logits: new Float32Array(8), vocab: 2, temperature: -2 }), 'RangeError', /`temperature`/);
    await expectRejects(logSoftmaxAsync({ logits: new Float32Array(8), vocab: 0 }), 'RangeError', /`vocab`/);
  });
});
