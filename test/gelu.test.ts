import { gelu, geluAsync, geluBackward, geluBackwardAsync, setSimdLevel, nativeInfo } from '../src/native';
import { Rng } from './helpers/random';
import { expectClose, finiteDiff, toF64 } from './helpers/compare';
import { impls } from './helpers/impls';

const S = Math.sqrt(2 / Math.PI);
const same = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer).equals(Buffer.from(b.buffer));
const gelu64 = (x: number) => 0.5 * x * (1 + Math.tanh(S * (x + 0.044715 * x ** 3)));

describe.each(impls)('gelu ($name)', ({ level, reference }) => {
  beforeAll(() => setSimdLevel(level));
  afterAll(() => setSimdLevel('avx512'));

  it.each([1, 7, 8, 9, 33, 100_003])('forward matches float64 at n=%i', (n) => {
    const x = new Rng(n).f32(n, 3);
    x[0] = -30; // saturated tails
    if (n > 1) x[1] = 30;
    expectClose(gelu({ input: x, reference }), Array.from(x, gelu64), 2e-5, 1e-4);
  });

  it('backward matches finite differences of the float64 forward', () => {
    const n = 37;
    const rng = new Rng(5);
    const x = rng.f32(n, 2);
    const dout = rng.f32(n);
    const dx = geluBackward({ input: x, dout, reference });
    const loss = (v: Float64Array) => v.reduce((s, xi, i) => s + gelu64(xi) * dout[i], 0);
    const fd = Array.from({ length: n }, (_, i) => finiteDiff(loss, toF64(x), i));
    expectClose(dx, fd, 1e-4, 1e-3);
    // accumulate adds onto what is there
    const acc = new Float32Array(n).fill(1);
    geluBackward({ input: x, dout, dinput: acc, accumulate: true, reference });
    expectClose(acc, Array.from(dx, (v) => v + 1), 1e-6);
  });
});

describe('gelu async and threading', () => {
  it('async gives the same bits as sync', async () => {
    const x = new Rng(9).f32(1 << 16);
    const a = gelu({ input: x });
    const b = await geluAsync({ input: x });
    expect(same(b, a)).toBe(true);
    expect(nativeInfo().threads).toBeGreaterThanOrEqual(1);
  });

  it('reference kernel: async gives the same bits as sync, and it is not the optimized kernel', async () => {
    const x = new Rng(10).f32(1 << 12, 3);
    const dout = new Rng(11).f32(1 << 12);
    const a = gelu({ input: x, reference: true });
    expect(same(await geluAsync({ input: x, reference: true }), a)).toBe(true);
    const d = geluBackward({ input: x, dout, reference: true });
    expect(same(await geluBackwardAsync({ input: x, dout, reference: true }), d)).toBe(true);
    // the option really selects another kernel: float32 SIMD vs double scalar differ in some bits
    expect(same(gelu({ input: x }), a)).toBe(false);
    expect(same(geluBackward({ input: x, dout }), d)).toBe(false);
  });
});
