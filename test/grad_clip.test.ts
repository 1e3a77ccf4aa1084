import { gradClip, gradClipAsync, gradNorm, gradNormAsync, setSimdLevel } from '../src/native';
import { digestWithThreads } from './helpers/threads';
import { expectClose } from './helpers/compare';
import { fastData, globalNormRef } from './helpers/ref_layers';
import { impls } from './helpers/impls';

const same = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer).equals(Buffer.from(b.buffer));
const makeGrads = (seed: number, sizes: number[], scale = 1) => sizes.map((n, k) => fastData(n, seed * 100 + k, scale));
const sizes = [1, 7, 4096, 4097, 100_003, 33];

describe.each(impls)('grad clip ($name)', ({ level, reference }) => {
  beforeAll(() => setSimdLevel(level));
  afterAll(() => setSimdLevel('avx512'));

  it('global norm matches the float64 reference', () => {
    const grads = makeGrads(1, sizes);
    expectClose([gradNorm({ grads, reference })], [globalNormRef(grads)], 1e-12);
    expect(gradNorm({ grads: [], reference })).toBe(0);
  });

  it('clips: scales by maxNorm / (norm + 1e-6) when the norm exceeds maxNorm', () => {
    const grads = makeGrads(2, sizes);
    const before = grads.map((g) => Float32Array.from(g));
    const norm = globalNormRef(grads);
    const maxNorm = norm / 3;
    const r = gradClip({ grads, maxNorm, reference });
    expectClose([r.norm], [norm], 1e-12);
    expect(r.clipped).toBe(true);
    expect(r.finite).toBe(true);
    const coef = maxNorm / (norm + 1e-6);
    expectClose([r.scale], [coef], 1e-12);
    grads.forEach((g, k) => expectClose(g, Array.from(before[k], (x) => x * coef), 1e-6, 1e-6));
    expectClose([globalNormRef(grads)], [maxNorm], 1e-6);
  });

  it('leaves the gradients alone when the norm is below maxNorm', () => {
    const grads = makeGrads(3, sizes, 0.01);
    const before = grads.map((g) => Float32Array.from(g));
    const r = gradClip({ grads, maxNorm: 1e6, reference });
    expect(r.clipped).toBe(false);
    expect(r.scale).toBe(1);
    grads.forEach((g, k) => expect(same(g, before[k])).toBe(true));
  });

  it.each([NaN, Infinity, -Infinity])('reports a non-finite norm (%f in a gradient) and scales nothing', (bad) => {
    const grads = makeGrads(4, sizes);
    grads[4][777] = bad;
    const before = grads.map((g) => Float32Array.from(g));
    const r = gradClip({ grads, maxNorm: 1e-3, reference });
    expect(r.finite).toBe(false);
    expect(r.clipped).toBe(false);
    expect(Number.isFinite(r.norm)).toBe(false);
    grads.forEach((g, k) => expect(same(g, before[k])).toBe(true));
    expect(Number.isNaN(gradNorm({ grads, reference }))).toBe(Number.isNaN(bad));
    expect(Number.isFinite(gradNorm({ grads, reference }))).toBe(false);
  });
});

describe('grad clip determinism and async', () => {
  it('the norm is the same for any thread count', () => {
    const body = `
      const grads = [fill(300001, 1), fill(5, 2), fill(70000, 3)];
      return [new Float64Array([addon.gradNorm({ grads })])];`;
    const runs = [1, 2, 3].map((t) => digestWithThreads(t, body));
    expect(runs.map((r) => r.threads)).toEqual([1, 2, 3]);
    expect(new Set(runs.map((r) => r.digest)).size).toBe(1);
  });

  it('the norm is the same on every SIMD path; async equals sync', async () => {
    const grads = makeGrads(6, [300_001, 5, 70_000]);
    const norms: number[] = [];
    for (const level of ['portable', 'avx2', 'avx512'] as const) {
      setSimdLevel(level);
      norms.push(gradNorm({ grads }));
    }
    setSimdLevel('avx512');
    expect(new Set(norms).size).toBe(1);
    expect(await gradNormAsync({ grads })).toBe(norms[0]);
    const a = grads.map((g) => Float32Array.from(g));
    const b = grads.map((g) => Float32Array.from(g));
    const ra = gradClip({ grads: a, maxNorm: 1 });
    const rb = await gradClipAsync({ grads: b, maxNorm: 1 });
    expect(rb).toEqual(ra);
    a.forEach((g, k) => expect(same(g, b[k])).toBe(true));
  });

  it('reference kernel: async equals sync, and it is not the optimized kernel', async () => {
    const grads = makeGrads(7, [300_001, 5, 70_000]);
    const norm = gradNorm({ grads, reference: true });
    expect(await gradNormAsync({ grads, reference: true })).toBe(norm);
    // one sequential double sum vs fixed blocks of 4 lanes: the last bits differ
    expect(gradNorm({ grads })).not.toBe(norm);
    const a = grads.map((g) => Float32Array.from(g));
    const b = grads.map((g) => Float32Array.from(g));
    const ra = gradClip({ grads: a, maxNorm: 1, reference: true });
    expect(ra.norm).toBe(norm);
    expect(await gradClipAsync({ grads: b, maxNorm: 1, reference: true })).toEqual(ra);
    a.forEach((g, k) => expect(same(g, b[k])).toBe(true));
  });
});
