import { gemm, gemmAsync, gemmReference, gemmReferenceAsync, setNumThreads, setSimdLevel } from '../src/native';
import { expectGemmClose, gemmRef64, type GemmCase } from './helpers/ref_gemm';
import { XorShiftRng as Rng } from './helpers/xorshift';

// [M, N, K]: odd sizes around the micro-tile widths (4x8, 6x16, 12x32), size 1, K beyond one cache
// block (256), M rows for the dot-product path (<= 64 with transB) and beyond, N beyond one N block.
const SHAPES: [number, number, number][] = [
  [1, 1, 1], [3, 5, 2], [7, 17, 31], [17, 7, 33], [31, 33, 65], [33, 65, 17], [65, 100, 7],
  [100, 31, 257], [257, 33, 40], [40, 257, 33], [1, 257, 100], [64, 100, 65], [65, 20, 300], [13, 600, 20],
];
const TRANS: [boolean, boolean][] = [[false, false], [false, true], [true, false], [true, true]];
const SCALES: [number, number][] = [[1, 0], [-1.5, 0.75], [1, 1]];


interface Fixture {
  c: GemmCase;
  A: Float32Array;
  B: Float32Array;
  C0: Float32Array;
  want: Float64Array;
  scale: Float64Array;
}

const fixtures = new Map<string, Fixture>();
function fixture(shape: [number, number, number], ta: boolean, tb: boolean, alpha: number, beta: number): Fixture {
  const key = `${shape}|${ta}|${tb}|${alpha}|${beta}`;
  let f = fixtures.get(key);
  if (!f) {
    const [M, N, K] = shape;
    const rng = new Rng(M * 7919 + N * 104729 + K * 13 + (ta ? 1 : 0) + (tb ? 2 : 0));
    const A = rng.f32(M * K);
    const B = rng.f32(K * N);
    // beta = 0 must ignore what is in C, NaN included.
    const C0 = beta === 0 ? new Float32Array(M * N).fill(NaN) : rng.f32(M * N);
    const c = { M, N, K, transA: ta, transB: tb, alpha, beta };
    f = { c, A, B, C0, ...(({ out, scale }) => ({ want: out, scale }))(gemmRef64(c, A, B, C0)) };
    fixtures.set(key, f);
  }
  return f;
}

const run = (f: Fixture) => gemm({ ...f.c, A: f.A, B: f.B, C: Float32Array.from(f.C0) });
const same = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

describe.each(['portable', 'avx2', 'avx512'] as const)('gemm (%s path)', (level) => {
  beforeAll(() => setSimdLevel(level));
  afterAll(() => setSimdLevel('avx512'));

  it.each(TRANS)('matches float64 on every shape with transA=%s transB=%s', (ta, tb) => {
    SHAPES.forEach((shape, s) => {
      const [alpha, beta] = SCALES[(s + (ta ? 1 : 0) + (tb ? 2 : 0)) % SCALES.length];
      const f = fixture(shape, ta, tb, alpha, beta);
      try {
        expectGemmClose(run(f), f.want, f.scale, shape[2]);
      } catch (e) {
        throw new Error(`shape ${shape} alpha=${alpha} beta=${beta}: ${(e as Error).message}`);
      }
    });
  });

  it.each(SCALES)('alpha=%s beta=%s on all transposes at 33x65x257', (alpha, beta) => {
    for (const [ta, tb] of TRANS) {
      const f = fixture([33, 65, 257], ta, tb, alpha, beta);
      expectGemmClose(run(f), f.want, f.scale, 257);
    }
  });

  it('is bit-identical with 1 and 2 threads, sync and async, call after call', async () => {
    // Shapes for the packed path split along M and along N, K beyond one block, and (with enough
    // work for two threads at M = 8) the dot (transB) and axpy (no transB) small-M paths.
    const shapes: [number, number, number][] = [[200, 70, 300], [40, 700, 70], [16, 300, 65], [8, 1000, 80], [1, 129, 33]];
    for (const [M, N, K] of shapes) {
      for (const [transA, transB] of TRANS) {
        const rng = new Rng(M + N + K);
        const args = { A: rng.f32(M * K), B: rng.f32(K * N), M, N, K, transA, transB, alpha: 0.5, beta: 1 };
        const C0 = rng.f32(M * N);
        setNumThreads(1);
        const one = gemm({ ...args, C: Float32Array.from(C0) });
        setNumThreads(2);
        const two = gemm({ ...args, C: Float32Array.from(C0) });
        const again = gemm({ ...args, C: Float32Array.from(C0) });
        const async_ = await gemmAsync({ ...args, C: Float32Array.from(C0) });
        setNumThreads(0);
        expect([M, N, K, transA, transB, same(one, two), same(two, again), same(two, async_)]).toEqual([M, N, K, transA, transB, true, true, true]);
      }
    }
  });
});

describe('gemm edge cases', () => {
  it('K = 0 gives C = beta * C, beta = 0 zeroing NaN', () => {
    const C = new Float32Array([1, NaN, 3, 4, 5, 6]);
    gemm({ A: new Float32Array(0), B: new Float32Array(0), C, M: 2, N: 3, K: 0, beta: 0 });
    expect(Array.from(C)).toEqual([0, 0, 0, 0, 0, 0]);
    const D = new Float32Array([1, 2, 3, 4]);
    gemm({ A: new Float32Array(0), B: new Float32Array(0), C: D, M: 2, N: 2, K: 0, beta: 2 });
    expect(Array.from(D)).toEqual([2, 4, 6, 8]);
  });

  it('M = 0 or N = 0 is a no-op', () => {
    expect(gemm({ A: new Float32Array(0), B: new Float32Array(12), M: 0, N: 4, K: 3 }).length).toBe(0);
    expect(gemm({ A: new Float32Array(6), B: new Float32Array(0), M: 2, N: 0, K: 3 }).length).toBe(0);
  });

  it('alpha = 0 scales C without reading A and B (BLAS semantics)', () => {
    const C = new Float32Array([1, 2, 3, 4]);
    gemm({ A: new Float32Array([NaN, 1, 1, 1]), B: new Float32Array(4).fill(Infinity), C, M: 2, N: 2, K: 2, alpha: 0, beta: 0.5 });
    expect(Array.from(C)).toEqual([0.5, 1, 1.5, 2]);
  });

  it('allocates C when omitted; defaults are transA = transB = false, alpha = 1, beta = 0', () => {
    const f = fixture([7, 17, 31], false, false, 1, 0);
    const C = gemm({ A: f.A, B: f.B, M: 7, N: 17, K: 31 });
    expectGemmClose(C, f.want, f.scale, 31);
  });

  it('gemmReference matches float64 to float32 rounding, sync and async', async () => {
    for (const [ta, tb] of TRANS) {
      const f = fixture([31, 33, 65], ta, tb, -1.5, 0.75);
      const args = { ...f.c, A: f.A, B: f.B };
      const r = gemmReference({ ...args, C: Float32Array.from(f.C0) });
      for (let i = 0; i < r.length; i++) expect(Math.abs(r[i] - f.want[i])).toBeLessThanOrEqual(Math.abs(f.want[i]) * 2 ** -23 + 1e-30);
      const ra = await gemmReferenceAsync({ ...args, C: Float32Array.from(f.C0) });
      expect(same(r, ra)).toBe(true);
    }
  });
});
