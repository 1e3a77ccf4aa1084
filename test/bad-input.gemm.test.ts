// Bad input for every gemm entry point: each throws (sync) or rejects (async) with a TypeError or
// RangeError that names the argument, and never crashes the process.
import { gemm, gemmAsync, gemmReference, gemmReferenceAsync, type GemmArgs } from '../src/native';
import { expectRejects, expectThrows } from './helpers/errors';

type Fn = (a: GemmArgs) => unknown;
const ENTRY: [string, Fn, boolean][] = [
  ['gemm', gemm, false],
  ['gemmAsync', gemmAsync, true],
  ['gemmReference', gemmReference, false],
  ['gemmReferenceAsync', gemmReferenceAsync, true],
];

// A valid call: M=2, N=3, K=4.
const good = (): GemmArgs => ({ A: new Float32Array(8), B: new Float32Array(12), C: new Float32Array(6), M: 2, N: 3, K: 4 });
const detached = (n: number) => {
  const a = new Float32Array(n);
  structuredClone(a.buffer, { transfer: [a.buffer] });
  return a;
};
const shared = () => {
  const buf = new Float32Array(64);
  return { ...good(), A: buf.subarray(0, 8), C: buf.subarray(4, 10) };
};

const CASES: [string, () => unknown, typeof TypeError | typeof RangeError, RegExp][] = [
  ['options not an object', () => 42, TypeError, /options object/],
  ['A of the wrong type', () => ({ ...good(), A: new Float64Array(8) }), TypeError, /`A`/],
  ['A too short', () => ({ ...good(), A: new Float32Array(7) }), RangeError, /length 8 for `A` but received length 7/],
  ['A missing', () => ({ ...good(), A: undefined }), TypeError, /`A`/],
  ['A detached', () => ({ ...good(), A: detached(8) }), RangeError, /`A`.*detached/],
  ['B a plain array', () => ({ ...good(), B: Array(12).fill(0) }), TypeError, /`B`/],
  ['B too long', () => ({ ...good(), B: new Float32Array(13) }), RangeError, /`B`/],
  ['B detached', () => ({ ...good(), B: detached(12) }), RangeError, /`B`/],
  ['C of the wrong type', () => ({ ...good(), C: new Int32Array(6) }), TypeError, /`C`/],
  ['C too short', () => ({ ...good(), C: new Float32Array(5) }), RangeError, /`C`/],
  ['C detached', () => ({ ...good(), C: detached(6) }), RangeError, /`C`/],
  ['C sharing memory with A', shared, RangeError, /`C`/],
  ['C omitted with beta != 0', () => ({ ...good(), C: undefined, beta: 1 }), RangeError, /`beta`/],
  ['M missing', () => ({ ...good(), M: undefined }), TypeError, /`M`/],
  ['M not an integer', () => ({ ...good(), M: 1.5 }), TypeError, /`M`/],
  ['M NaN', () => ({ ...good(), M: NaN }), TypeError, /`M`/],
  ['M negative', () => ({ ...good(), M: -1 }), RangeError, /`M`/],
  ['N a string', () => ({ ...good(), N: '3' }), TypeError, /`N`/],
  ['N = 2^31', () => ({ ...good(), N: 2 ** 31 }), RangeError, /`N`/],
  ['K negative', () => ({ ...good(), K: -4 }), RangeError, /`K`/],
  ['K infinite', () => ({ ...good(), K: Infinity }), TypeError, /`K`/],
  ['dims whose product does not match A', () => ({ ...good(), K: 5 }), RangeError, /`A`/],
  ['transA not a boolean', () => ({ ...good(), transA: 'yes' }), TypeError, /`transA`/],
  ['transB not a boolean', () => ({ ...good(), transB: 1 }), TypeError, /`transB`/],
  ['alpha NaN', () => ({ ...good(), alpha: NaN }), RangeError, /`alpha`/],
  ['alpha a string', () => ({ ...good(), alpha: '1' }), TypeError, /`alpha`/],
  ['beta infinite', () => ({ ...good(), beta: Infinity }), RangeError, /`beta`/],
  ['beta beyond float range', () => ({ ...good(), beta: 1e300 }), RangeError, /`beta`/],
];

describe.each(ENTRY)('%s rejects bad input', (_name, fn, isAsync) => {
  it.each(CASES)('%s', async (_label, make, cls, re) => {
    const call = () => fn(make() as GemmArgs);
    if (isAsync) {
      let result: unknown;
      expect(() => (result = call())).not.toThrow(); // async wrappers reject, they never throw
      await expectRejects(result as Promise<unknown>, cls.name as 'TypeError' | 'RangeError', re);
    } else {
      expectThrows(call, cls.name as 'TypeError' | 'RangeError', re);
    }
  });

  it('still works after all that', async () => {
    const args = { ...good(), A: new Float32Array(8).fill(1), B: new Float32Array(12).fill(1) };
    const C = (await fn(args)) as Float32Array;
    expect(Array.from(C)).toEqual([4, 4, 4, 4, 4, 4]);
  });
});
