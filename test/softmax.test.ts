import { softmax, softmaxAsync, softmaxBackward, softmaxBackwardAsync, setSimdLevel } from '../src/native';
import { Rng } from './helpers/random';
import { expectClose, finiteDiff, toF64 } from './helpers/compare';
import { softmaxRef } from './helpers/ref_layers';
import { impls } from './helpers/impls';

const same = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer).equals(Buffer.from(b.buffer));

describe.each(impls)('softmax ($name)', ({ level, reference }) => {
  beforeAll(() => setSimdLevel(level));
  afterAll(() => setSimdLevel('avx512'));

  it.each([
    [1, 1, 1],
    [1, 7, 0.5],
    [3, 8, 1],
    [5, 13, 2],
    [9, 100, 0.125],
    [4, 1000, 1],
  ])('forward matches float64 at N=%i C=%i scale=%f', (N, C, scale) => {
    const x = new Rng(N * 7 + C).f32(N * C, 4);
    expectClose(softmax({ input: x, C, scale, reference }), softmaxRef(x, N, C, scale), 1e-5, 1e-6);
  });

  it('-Infinity entries get 0 and an all -Infinity row gives zeros', () => {
    const C = 11;
    const x = new Rng(2).f32(3 * C);
    x[3] = -Infinity;
    x[C + 10] = -Infinity;
    for (let i = 2 * C; i < 3 * C; i++) x[i] = -Infinity;
    const p = softmax({ input: x, C, reference });
    expect(p[3]).toBe(0);
    expect(p[C + 10]).toBe(0);
    expect(Array.from(p.subarray(2 * C))).toEqual(new Array(C).fill(0));
    expectClose(p, softmaxRef(x, 3, C), 1e-5, 1e-6);
  });

  it.each([
    [1, 1, 1],
    [2, 5, 1],
    [3, 9, 0.7],
    [2, 17, 1.5],
  ])('backward matches finite differences at N=%i C=%i scale=%f', (N, C, scale) => {
    const rng = new Rng(N + C);
    const x = rng.f32(N * C, 2);
    const dout = rng.f32(N * C);
    const p = softmax({ input: x, C, scale, reference });
    const dx = softmaxBackward({ probs: p, dout, C, scale, reference });
    const loss = (xx: Float64Array) => softmaxRef(xx, N, C, scale).reduce((s, o, i) => s + o * dout[i], 0);
    const fd = Array.from({ length: N * C }, (_, i) => finiteDiff(loss, toF64(x), i));
    expectClose(dx, fd, 1e-3, 1e-2);
    const acc = new Float32Array(N * C).fill(2);
    softmaxBackward({ probs: p, dout, C, scale, dinput: acc, accumulate: true, reference });
    expectClose(acc, Array.from(dx, (v) => v + 2), 1e-6, 1);
  });
});

describe('softmax determinism and async', () => {
  it('async gives the same bits as sync', async () => {
    const N = 300;
    const C = 257;
    const rng = new Rng(4);
    const x = rng.f32(N * C, 3);
    const dout = rng.f32(N * C);
    const p = softmax({ input: x, C });
    expect(same(p, await softmaxAsync({ input: x, C }))).toBe(true);
    expect(same(p, softmax({ input: x, C }))).toBe(true);
    const d = softmaxBackward({ probs: p, dout, C });
    expect(same(d, await softmaxBackwardAsync({ probs: p, dout, C }))).toBe(true);
  });

  it('reference kernel: async gives the same bits as sync, and it is not the optimized kernel', async () => {
    const C = 61;
    const rng = new Rng(8);
    const x = rng.f32(40 * C, 3);
    const dout = rng.f32(40 * C);
    const p = softmax({ input: x, C, reference: true });
    expect(same(p, await softmaxAsync({ input: x, C, reference: true }))).toBe(true);
    const d = softmaxBackward({ probs: p, dout, C, reference: true });
    expect(same(d, await softmaxBackwardAsync({ probs: p, dout, C, reference: true }))).toBe(true);
    // the option really selects another kernel: float32 SIMD vs double scalar differ in some bits
    expect(same(p, softmax({ input: x, C }))).toBe(false);
    expect(same(d, softmaxBackward({ probs: p, dout, C }))).toBe(false);
  });
});
