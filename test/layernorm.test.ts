import { layerNorm, layerNormAsync, layerNormBackward, layerNormBackwardAsync, setSimdLevel } from '../src/native';
import { Rng } from './helpers/random';
import { expectClose, finiteDiff, toF64 } from './helpers/compare';
import { layerNormRef } from './helpers/ref_layers';
import { impls } from './helpers/impls';

const same = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer).equals(Buffer.from(b.buffer));

function data(N: number, C: number, seed: number) {
  const rng = new Rng(seed);
  const x = rng.f32(N * C, 2);
  for (let i = 0; i < x.length; i++) x[i] += 3; // an offset: the mean matters
  return { x, w: rng.f32(C, 1), b: rng.f32(C, 1), dout: rng.f32(N * C) };
}

describe.each(impls)('layerNorm ($name)', ({ level, reference }) => {
  beforeAll(() => setSimdLevel(level));
  afterAll(() => setSimdLevel('avx512'));

  it.each([
    [1, 1],
    [1, 7],
    [3, 8],
    [5, 13],
    [17, 384],
    [64, 100],
  ])('forward matches float64 at N=%i C=%i', (N, C) => {
    const { x, w, b } = data(N, C, N * 31 + C);
    const r = layerNorm({ input: x, weight: w, bias: b, N, C, reference });
    const ref = layerNormRef(x, w, b, N, C);
    expectClose(r.out, ref.out, 1e-5, 1);
    expectClose(r.mean, ref.mean, 1e-5);
    expectClose(r.rstd, ref.rstd, 1e-4);
  });

  it.each([
    [1, 1],
    [2, 5],
    [3, 11],
    [4, 16],
  ])('backward (dinput, dweight, dbias) matches finite differences at N=%i C=%i', (N, C) => {
    const { x, w, b, dout } = data(N, C, 7 + N + C);
    const f = layerNorm({ input: x, weight: w, bias: b, C, reference });
    const g = layerNormBackward({ dout, input: x, weight: w, mean: f.mean, rstd: f.rstd, C, reference });
    const lossX = (xx: Float64Array) => layerNormRef(xx, w, b, N, C).out.reduce((s, o, i) => s + o * dout[i], 0);
    const lossW = (ww: Float64Array) => layerNormRef(x, ww, b, N, C).out.reduce((s, o, i) => s + o * dout[i], 0);
    const lossB = (bb: Float64Array) => layerNormRef(x, w, bb, N, C).out.reduce((s, o, i) => s + o * dout[i], 0);
    const fdx = Array.from({ length: N * C }, (_, i) => finiteDiff(lossX, toF64(x), i));
    const fdw = Array.from({ length: C }, (_, i) => finiteDiff(lossW, toF64(w), i));
    const fdb = Array.from({ length: C }, (_, i) => finiteDiff(lossB, toF64(b), i));
    // C = 1: the normalized output is identically 0, dinput is 0 (up to rounding).
    expectClose(g.dinput, fdx, 2e-3, 1e-2);
    expectClose(g.dweight, fdw, 1e-3, 1e-2);
    expectClose(g.dbias, fdb, 1e-4, 1e-2);
  });

  it('backward accumulates: dinput with the flag, dweight/dbias always', () => {
    const N = 40;
    const C = 37;
    const { x, w, b, dout } = data(N, C, 3);
    const f = layerNorm({ input: x, weight: w, bias: b, C, reference });
    const g = layerNormBackward({ dout, input: x, weight: w, mean: f.mean, rstd: f.rstd, C, reference });
    const dinput = new Float32Array(N * C).fill(0.5);
    const dweight = new Float32Array(C).fill(1);
    const dbias = new Float32Array(C).fill(-1);
    layerNormBackward({ dout, input: x, weight: w, mean: f.mean, rstd: f.rstd, C, dinput, dweight, dbias, accumulate: true, reference });
    expectClose(dinput, Array.from(g.dinput, (v) => v + 0.5), 1e-6, 1);
    expectClose(dweight, Array.from(g.dweight, (v) => v + 1), 1e-5, 1);
    expectClose(dbias, Array.from(g.dbias, (v) => v - 1), 1e-5, 1);
    // without the flag dinput is overwritten, dweight/dbias still accumulate
    layerNormBackward({ dout, input: x, weight: w, mean: f.mean, rstd: f.rstd, C, dinput, dweight, dbias, reference });
    expectClose(dinput, g.dinput, 0);
    expectClose(dweight, Array.from(g.dweight, (v) => 2 * v + 1), 1e-5, 1);
  });

  it('eps is honoured', () => {
    const { x, w, b } = data(4, 9, 11);
    expectClose(layerNorm({ input: x, weight: w, bias: b, C: 9, eps: 0.5, reference }).out, layerNormRef(x, w, b, 4, 9, 0.5).out, 1e-4, 1e-2);
  });
});

describe('layerNorm determinism and async', () => {
  it('async gives the same bits as sync; repeated calls are identical', async () => {
    const N = 2048;
    const C = 96;
    const { x, w, b, dout } = data(N, C, 1);
    const s = layerNorm({ input: x, weight: w, bias: b, C });
    const a = await layerNormAsync({ input: x, weight: w, bias: b, C });
    expect(same(s.out, a.out) && same(s.mean, a.mean) && same(s.rstd, a.rstd)).toBe(true);
    const g1 = layerNormBackward({ dout, input: x, weight: w, mean: s.mean, rstd: s.rstd, C });
    const g2 = await layerNormBackwardAsync({ dout, input: x, weight: w, mean: s.mean, rstd: s.rstd, C });
    const g3 = layerNormBackward({ dout, input: x, weight: w, mean: s.mean, rstd: s.rstd, C });
    for (const k of ['dinput', 'dweight', 'dbias'] as const) {
      expect(same(g1[k], g2[k])).toBe(true);
      expect(same(g1[k], g3[k])).toBe(true);
    }
  });

  it('reference kernel: async gives the same bits as sync, and it is not the optimized kernel', async () => {
    const [N, C] = [50, 37];
    const { x, w, b, dout } = data(N, C, 2);
    const reference = true;
    const s = layerNorm({ input: x, weight: w, bias: b, C, reference });
    const a = await layerNormAsync({ input: x, weight: w, bias: b, C, reference });
    expect(same(s.out, a.out) && same(s.mean, a.mean) && same(s.rstd, a.rstd)).toBe(true);
    const g1 = layerNormBackward({ dout, input: x, weight: w, mean: s.mean, rstd: s.rstd, C, reference });
    const g2 = await layerNormBackwardAsync({ dout, input: x, weight: w, mean: s.mean, rstd: s.rstd, C, reference });
    for (const k of ['dinput', 'dweight', 'dbias'] as const) expect(same(g1[k], g2[k])).toBe(true);
    // the option really selects another kernel: float32 SIMD vs double scalar differ in some bits
    expect(same(s.out, layerNorm({ input: x, weight: w, bias: b, C }).out)).toBe(false);
    const fast = layerNormBackward({ dout, input: x, weight: w, mean: s.mean, rstd: s.rstd, C });
    expect(same(g1.dinput, fast.dinput)).toBe(false);
  });
});
