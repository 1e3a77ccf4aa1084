// gemmBf16: Y = X @ W^T (+ bias) (+ beta * Y) with bf16 weights, against a float64 reference on every
// SIMD path, in both modes; Exact against sgemm on the widened weights; batch invariance (a row's
// bits do not depend on M or on the thread count); the rounding of X in 'bf16dot'; bad inputs.
import {
  bf16ToF32,
  f32ToBf16,
  gemm,
  gemmBf16,
  gemmBf16Async,
  gemmBf16Reference,
  gemmBf16ReferenceAsync,
  nativeInfo,
  setNumThreads,
  setSimdLevel,
  type Bf16Mode,
  type GemmBf16Args,
} from '../src/native';
import { expectRejects, expectThrows } from './helpers/errors';
import { expectGemmClose } from './helpers/ref_gemm';
import { XorShiftRng } from './helpers/xorshift';

/** The GEMM tests' xorshift data, plus bf16 weights. */
class Rng extends XorShiftRng {
  bf16(n: number): Uint16Array {
    return f32ToBf16(this.f32(n));
  }
}

const LEVELS = ['portable', 'avx2', 'avx512'] as const;
const MODES: Bf16Mode[] = ['exact', 'bf16dot', 'packed'];
const same = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
const round = (x: Float32Array) => bf16ToF32(f32ToBf16(x));

interface Case {
  M: number;
  N: number;
  K: number;
  ldx: number;
  ldw: number;
  ldy: number;
  X: Float32Array;
  W: Uint16Array;
  Y0: Float32Array;
  bias?: Float32Array;
  beta: number;
}

/** A case with strides pad elements beyond the rows, bias and beta when asked. */
function makeCase(M: number, N: number, K: number, pad: number, withBias: boolean, beta: number): Case {
  const rng = new Rng(M * 7919 + N * 104729 + K * 13 + pad);
  const [ldx, ldw, ldy] = [K + pad, K + 2 * pad, N + pad];
  const Y0 = beta === 0 ? new Float32Array(M * ldy).fill(NaN) : rng.f32(M * ldy); // beta = 0 ignores NaN in Y
  return { M, N, K, ldx, ldw, ldy, X: rng.f32(M * ldx), W: rng.bf16(N * ldw), Y0, bias: withBias ? rng.f32(N) : undefined, beta };
}

/** Float64 reference and the scale sum |x w| + |bias| + |beta y0| that bounds the fp32 rounding. */
function ref64(c: Case, mode: Bf16Mode): { want: Float64Array; scale: Float64Array } {
  const x = mode === 'bf16dot' ? round(c.X) : c.X;
  const w = bf16ToF32(c.W);
  const want = new Float64Array(c.M * c.N);
  const scale = new Float64Array(c.M * c.N);
  for (let i = 0; i < c.M; i++)
    for (let j = 0; j < c.N; j++) {
      let acc = 0;
      let abs = 0;
      for (let k = 0, xi = i * c.ldx, wj = j * c.ldw; k < c.K; k++) {
        const p = x[xi + k] * w[wj + k];
        acc += p;
        abs += p < 0 ? -p : p;
      }
      const extra = (c.bias ? c.bias[j] : 0) + (c.beta === 0 ? 0 : c.beta * c.Y0[i * c.ldy + j]);
      want[i * c.N + j] = acc + extra;
      scale[i * c.N + j] = abs + (extra < 0 ? -extra : extra);
    }
  return { want, scale };
}

const args = (c: Case, mode: Bf16Mode, Y = Float32Array.from(c.Y0)): GemmBf16Args & { Y: Float32Array } => ({
  X: c.X, W: c.W, Y, M: c.M, N: c.N, K: c.K, ldx: c.ldx, ldw: c.ldw, ldy: c.ldy, bias: c.bias, beta: c.beta, mode,
});

/** The [M,N] block of a strided Y. */
function dense(Y: Float32Array, M: number, N: number, ldy: number): Float32Array {
  const out = new Float32Array(M * N);
  for (let i = 0; i < M; i++) out.set(Y.subarray(i * ldy, i * ldy + N), i * N);
  return out;
}

// [M, N, K]: M = 1, 2, 3, 5, 17 (the 4-row tiles and their remainders), N and K off the multiples of
// 4 / 16 / 32, K beyond one K block (768 fp32, 1536 bf16) and with a tail.
const SHAPES: [number, number, number][] = [
  [1, 1, 1], [1, 7, 31], [2, 33, 65], [3, 17, 100], [5, 40, 33], [17, 23, 257], [1, 100, 1000], [6, 21, 1600], [9, 5, 2000],
];

describe.each(LEVELS)('gemmBf16 (%s path)', (level) => {
  beforeAll(() => setSimdLevel(level));
  afterAll(() => setSimdLevel('avx512'));

  it.each(MODES)('%s matches float64 on every shape, with strides, bias and beta', (mode) => {
    SHAPES.forEach(([M, N, K], s) => {
      const c = makeCase(M, N, K, s % 3 === 0 ? 0 : s % 3 === 1 ? 3 : 5, s % 2 === 0, [0, 0.75, 1][s % 3]);
      const { want, scale } = ref64(c, mode);
      const Y = gemmBf16(args(c, mode));
      try {
        expectGemmClose(dense(Y, M, N, c.ldy), want, scale, K);
      } catch (e) {
        throw new Error(`${M}x${N}x${K} ld ${c.ldx},${c.ldw},${c.ldy} beta ${c.beta}: ${(e as Error).message}`);
      }
      // The padding of Y between rows is not written.
      for (let i = 0; i < M; i++) for (let j = N; j < c.ldy; j++) expect(Object.is(Y[i * c.ldy + j], c.Y0[i * c.ldy + j])).toBe(true);
    });
  });

  it.each(MODES)('%s is batch invariant: each row alone, in sub-batches and with 1 or 2 threads gives the same bits', (mode) => {
    for (const [M, N, K] of [[37, 50, 900], [11, 130, 70]] as [number, number, number][]) {
      const c = makeCase(M, N, K, 1, true, 0.5);
      setNumThreads(2);
      const all = dense(gemmBf16(args(c, mode)), M, N, c.ldy);
      setNumThreads(1);
      const one = dense(gemmBf16(args(c, mode)), M, N, c.ldy);
      setNumThreads(0);
      expect(same(all, one)).toBe(true);
      const sub = (i0: number, m: number) =>
        dense(gemmBf16({ ...args(c, mode, c.Y0.slice(i0 * c.ldy, (i0 + m) * c.ldy)), X: c.X.subarray(i0 * c.ldx), M: m }), m, N, c.ldy);
      for (let i = 0; i < M; i++) expect([i, same(sub(i, 1), all.subarray(i * N, (i + 1) * N))]).toEqual([i, true]);
      for (const [i0, m] of [[0, 5], [3, 7], [M - 6, 6], [2, M - 2]]) expect([i0, m, same(sub(i0, m), all.subarray(i0 * N, (i0 + m) * N))]).toEqual([i0, m, true]);
    }
  });

  if (level !== 'avx512') {
    it("bf16dot is exact mode on X rounded to bf16, bit for bit (the emulation of vdpbf16ps's input rounding)", () => {
      const c = makeCase(7, 45, 333, 2, true, 0.25);
      const dot = gemmBf16(args(c, 'bf16dot'));
      const exactOnRounded = gemmBf16({ ...args(c, 'exact'), X: round(c.X) });
      expect(same(dot, exactOnRounded)).toBe(true);
    });
  }

  it('exact equals sgemm on the widened weights to fp32 rounding', () => {
    const [M, N, K] = [19, 70, 1000];
    const c = makeCase(M, N, K, 0, false, 0);
    const ours = gemmBf16(args(c, 'exact'));
    const theirs = gemm({ A: c.X, B: bf16ToF32(c.W), M, N, K, transB: true });
    const { scale } = ref64(c, 'exact');
    const tol = 2 * (K + 4) * 2 ** -23;
    for (let i = 0; i < M * N; i++) if (!(Math.abs(ours[i] - theirs[i]) <= tol * scale[i])) throw new Error(`element ${i}: ${ours[i]} vs sgemm ${theirs[i]}`);
  });

  it('packed equals sgemm on the widened weights bit for bit (its packed path: M past the dot path)', () => {
    for (const [M, N, K] of [[60, 70, 1000], [97, 33, 65]] as [number, number, number][]) {
      const c = makeCase(M, N, K, 0, false, 0);
      const ours = gemmBf16(args(c, 'packed'));
      const theirs = gemm({ A: c.X, B: bf16ToF32(c.W), M, N, K, transB: true });
      expect(same(ours, theirs)).toBe(true);
    }
  });

  it("rounds X to bf16 in bf16dot exactly as f32ToBf16 (ties to even, NaN kept, overflow to Inf)", () => {
    const u = Uint32Array.from([
      0x3f800000, 0x3f808000, 0x3f818000, 0x3f808001, 0x3f80ffff, 0xbf808000, 0x7f7fffff, 0xff7fffff, 0x7f800000, 0xff800000,
      0x7fc00001, 0x7f800001, 0xffbfffff, 0x00000000, 0x80000000, 0x40490fdb, 0x3dcccccd, 0x47fff000,
    ]);
    const X = new Float32Array(u.buffer);
    const M = X.length;
    const Y = gemmBf16({ X, W: f32ToBf16(Float32Array.of(1)), M, N: 1, K: 1, mode: 'bf16dot' });
    const want = round(X);
    for (let i = 0; i < M; i++) expect([i, Number.isNaN(want[i]) ? Number.isNaN(Y[i]) : Object.is(Y[i], want[i] + 0)]).toEqual([i, true]);
    // f32ToBf16 itself: RNE on the bits, NaN quieted.
    expect(Array.from(f32ToBf16(X).subarray(0, 13))).toEqual([0x3f80, 0x3f80, 0x3f82, 0x3f81, 0x3f81, 0xbf80, 0x7f80, 0xff80, 0x7f80, 0xff80, 0x7fc0, 0x7fc0, 0xffff]);
  });
});

describe('gemmBf16 edge cases', () => {
  it('K = 0 gives Y = beta * Y + bias; M = 0 or N = 0 is a no-op', () => {
    const Y = new Float32Array([1, NaN, 3, 4]);
    gemmBf16({ X: new Float32Array(0), W: new Uint16Array(0), Y, M: 2, N: 2, K: 0 });
    expect(Array.from(Y)).toEqual([0, 0, 0, 0]);
    const Z = new Float32Array([1, 2, 3, 4]);
    gemmBf16({ X: new Float32Array(0), W: new Uint16Array(0), Y: Z, M: 2, N: 2, K: 0, beta: 2, bias: Float32Array.of(1, -1) });
    expect(Array.from(Z)).toEqual([3, 3, 7, 7]);
    expect(gemmBf16({ X: new Float32Array(0), W: new Uint16Array(6), M: 0, N: 2, K: 3 }).length).toBe(0);
    expect(gemmBf16({ X: new Float32Array(6), W: new Uint16Array(0), M: 2, N: 0, K: 3 }).length).toBe(0);
  });

  it('allocates Y when omitted; defaults are mode exact, beta 0, no bias, dense strides', () => {
    const c = makeCase(4, 9, 50, 0, false, 0);
    const Y = gemmBf16({ X: c.X, W: c.W, M: 4, N: 9, K: 50 });
    const { want, scale } = ref64(c, 'exact');
    expectGemmClose(Y, want, scale, 50);
  });

  it('async gives the same bits as sync; the reference matches float64 to fp32 rounding, sync and async', async () => {
    const c = makeCase(23, 41, 777, 2, true, 0.5);
    for (const mode of MODES) {
      const sync = gemmBf16(args(c, mode));
      expect(same(sync, await gemmBf16Async(args(c, mode)))).toBe(true);
      const r = gemmBf16Reference(args(c, mode));
      expect(same(r, await gemmBf16ReferenceAsync(args(c, mode)))).toBe(true);
      const { want } = ref64(c, mode);
      const got = dense(r, c.M, c.N, c.ldy);
      for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i])).toBeLessThanOrEqual(Math.abs(want[i]) * 2 ** -23 + 1e-30);
    }
  });

  it('a row in a batch of 300 equals the row computed alone (the decode path of generation)', () => {
    setSimdLevel('avx512');
    const c = makeCase(300, 64, 800, 0, true, 0);
    for (const mode of MODES) {
      const all = gemmBf16(args(c, mode));
      for (const i of [0, 149, 299]) {
        const row = gemmBf16({ ...args(c, mode, new Float32Array(64)), X: c.X.subarray(i * 800, (i + 1) * 800), M: 1 });
        expect([mode, i, same(row, all.subarray(i * 64, (i + 1) * 64))]).toEqual([mode, i, true]);
      }
    }
  });

  it(`bf16dot on the avx512 path (vdpbf16ps: ${nativeInfo().cpuFeatures.avx512bf16 ? 'yes' : 'no, emulated'}) agrees with exact on rounded X`, () => {
    // vdpbf16ps adds each pair of products before the accumulator; the emulation adds them one by one.
    setSimdLevel('avx512');
    const c = makeCase(3, 8, 96, 0, false, 0);
    const dot = gemmBf16(args(c, 'bf16dot'));
    const emulated = gemmBf16({ ...args(c, 'exact'), X: round(c.X) });
    for (let i = 0; i < dot.length; i++) expect(Math.abs(dot[i] - emulated[i])).toBeLessThan(1e-5);
  });
});

describe('gemmBf16 rejects bad input with errors naming the argument', () => {
  const good = (): GemmBf16Args => ({ X: new Float32Array(8), W: new Uint16Array(12), Y: new Float32Array(6), M: 2, N: 3, K: 4 });
  const detached = <T extends Float32Array | Uint16Array>(a: T): T => {
    structuredClone(a.buffer, { transfer: [a.buffer as ArrayBuffer] });
    return a;
  };
  const CASES: [string, () => unknown, 'TypeError' | 'RangeError', RegExp][] = [
    ['options not an object', () => 7, 'TypeError', /options object/],
    ['W a Float32Array', () => ({ ...good(), W: new Float32Array(12) }), 'TypeError', /Uint16Array.*`W`/],
    ['W missing', () => ({ ...good(), W: undefined }), 'TypeError', /`W`/],
    ['W too short', () => ({ ...good(), W: new Uint16Array(11) }), 'RangeError', /at least 12 elements for `W`/],
    ['W detached', () => ({ ...good(), W: detached(new Uint16Array(12)) }), 'RangeError', /`W`.*detached/],
    ['W too short for ldw', () => ({ ...good(), ldw: 6 }), 'RangeError', /at least 16 elements for `W`/],
    ['X an Int32Array', () => ({ ...good(), X: new Int32Array(8) }), 'TypeError', /`X`/],
    ['X too short for ldx', () => ({ ...good(), ldx: 5 }), 'RangeError', /at least 9 elements for `X`/],
    ['Y too short', () => ({ ...good(), Y: new Float32Array(5) }), 'RangeError', /`Y`/],
    ['Y detached', () => ({ ...good(), Y: detached(new Float32Array(6)) }), 'RangeError', /`Y`/],
    ['Y omitted with beta != 0', () => ({ ...good(), Y: undefined, beta: 1 }), 'RangeError', /`beta`/],
    ['Y sharing memory with X', () => { const b = new Float32Array(16); return { ...good(), X: b.subarray(0, 8), Y: b.subarray(4, 10) }; }, 'RangeError', /`Y`/],
    ['Y sharing memory with W', () => { const b = new ArrayBuffer(64); return { ...good(), W: new Uint16Array(b, 0, 12), Y: new Float32Array(b, 16, 6) }; }, 'RangeError', /`Y` must not share memory with `W`/],
    ['ldx below K', () => ({ ...good(), ldx: 3 }), 'RangeError', /`ldx`/],
    ['ldy not an integer', () => ({ ...good(), ldy: 3.5 }), 'TypeError', /`ldy`/],
    ['bias of the wrong length', () => ({ ...good(), bias: new Float32Array(2) }), 'RangeError', /`bias`/],
    ['mode unknown', () => ({ ...good(), mode: 'fp16' }), 'TypeError', /`mode`/],
    ['M negative', () => ({ ...good(), M: -1 }), 'RangeError', /`M`/],
    ['K not an integer', () => ({ ...good(), K: 1.5 }), 'TypeError', /`K`/],
    ['N = 2^31', () => ({ ...good(), N: 2 ** 31 }), 'RangeError', /`N`/],
    ['beta NaN', () => ({ ...good(), beta: NaN }), 'RangeError', /`beta`/],
  ];
  const ENTRY: [string, (a: GemmBf16Args) => unknown, boolean][] = [
    ['gemmBf16', gemmBf16, false],
    ['gemmBf16Async', gemmBf16Async, true],
    ['gemmBf16Reference', gemmBf16Reference, false],
  ];
  it.each(ENTRY)('%s', async (_name, fn, isAsync) => {
    for (const [label, make, cls, re] of CASES) {
      try {
        if (isAsync) await expectRejects(fn(make() as GemmBf16Args) as Promise<unknown>, cls, re);
        else expectThrows(() => fn(make() as GemmBf16Args), cls, re);
      } catch (e) {
        throw new Error(`${label}: ${(e as Error).message}`);
      }
    }
    // Still works after all that.
    const Y = (await fn({ ...good(), X: new Float32Array(8).fill(1), W: f32ToBf16(new Float32Array(12).fill(2)) })) as Float32Array;
    expect(Array.from(Y)).toEqual([8, 8, 8, 8, 8, 8]);
  });
});
