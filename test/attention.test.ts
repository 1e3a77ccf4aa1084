import {
  attention,
  attentionAsync,
  attentionBackward,
  attentionBackwardAsync,
  attentionCached,
  attentionCachedAsync,
  setSimdLevel,
} from '../src/native';
import { digestWithThreads } from './helpers/threads';
import { Rng } from './helpers/random';
import { expectClose, finiteDiff, toF64 } from './helpers/compare';
import { attentionRef, attentionSplitRef, splitQkv } from './helpers/ref_layers';
import { impls } from './helpers/impls';

const same = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer).equals(Buffer.from(b.buffer));

/** lse check: -Infinity (no visible key) exactly where the reference has it, close elsewhere. */
function expectLse(actual: Float32Array, expected: Float64Array): void {
  const fin: number[] = [];
  for (let i = 0; i < expected.length; i++) {
    if (expected[i] === -Infinity) expect(actual[i]).toBe(-Infinity);
    else fin.push(i);
  }
  expectClose(fin.map((i) => actual[i]), fin.map((i) => expected[i]), 1e-5, 1);
}

/** A padding mask [B,T] with some invalid keys (left padding on one row, holes on another). */
function makeMask(B: number, T: number, rng: Rng): Int32Array {
  const m = new Int32Array(B * T).fill(1);
  for (let b = 0; b < B; b++) {
    if (b % 3 === 1) for (let t = 0; t < Math.min(T - 1, 2); t++) m[b * T + t] = 0; // left padding
    if (b % 3 === 2) for (let t = 0; t < T; t++) m[b * T + t] = rng.next() < 0.3 ? 0 : 1;
  }
  return m;
}

// [B, T, C, H, masked]
const shapes: [number, number, number, number, boolean][] = [
  [1, 1, 4, 1, false],
  [1, 1, 6, 2, true],
  [2, 5, 12, 3, true],
  [3, 33, 24, 2, true],
  [2, 70, 20, 4, true],
  [1, 40, 48, 3, false],
  [2, 65, 128, 2, true],
];

describe.each(impls)('attention ($name)', ({ level, reference }) => {
  beforeAll(() => setSimdLevel(level));
  afterAll(() => setSimdLevel('avx512'));

  it.each(shapes)('forward matches float64 at B=%i T=%i C=%i H=%i masked=%s', (B, T, C, H, masked) => {
    const rng = new Rng(B * 1000 + T * 10 + C);
    const qkv = rng.f32(B * T * 3 * C, 1);
    const mask = masked ? makeMask(B, T, rng) : undefined;
    const r = attention({ qkv, B, T, C, H, mask, reference });
    const ref = attentionRef(qkv, B, T, C, H, mask);
    expectClose(r.out, ref.out, 1e-4, 1e-2);
    expectLse(r.lse, ref.lse);
    // a row with no valid key outputs exactly 0
    for (let i = 0; i < ref.lse.length; i++) {
      if (ref.lse[i] !== -Infinity) continue;
      const b = Math.floor(i / (H * T));
      const t = i % T;
      const h = Math.floor(i / T) % H;
      const row = r.out.subarray((b * T + t) * C + (h * C) / H, (b * T + t) * C + ((h + 1) * C) / H);
      expect(row.every((x) => x === 0)).toBe(true);
    }
  });

  it.each([
    [1, 1, 4, 2, false],
    [2, 4, 6, 2, true],
    [1, 6, 9, 3, false],
    [3, 5, 4, 1, true],
  ] as [number, number, number, number, boolean][])(
    'backward dqkv matches finite differences at B=%i T=%i C=%i H=%i masked=%s',
    (B, T, C, H, masked) => {
      const rng = new Rng(B * 100 + T + C);
      const qkv = rng.f32(B * T * 3 * C, 1);
      const dout = rng.f32(B * T * C);
      const mask = masked ? makeMask(B, T, rng) : undefined;
      if (mask && B >= 3) mask.fill(0, 2 * T, 2 * T + 2); // b=2: the first queries see no key at all
      const f = attention({ qkv, B, T, C, H, mask, reference });
      const g = attentionBackward({ dout, qkv, out: f.out, lse: f.lse, B, T, C, H, mask, reference });
      const loss = (x: Float64Array) => attentionRef(x, B, T, C, H, mask).out.reduce((s, o, i) => s + o * dout[i], 0);
      const fd = Array.from({ length: qkv.length }, (_, i) => finiteDiff(loss, toF64(qkv), i));
      expectClose(g, fd, 2e-3, 1e-2);
      // accumulate adds onto what is there
      const acc = new Float32Array(qkv.length).fill(1);
      attentionBackward({ dout, qkv, out: f.out, lse: f.lse, B, T, C, H, mask, dqkv: acc, accumulate: true, reference });
      expectClose(acc, Array.from(g, (v) => v + 1), 1e-6, 1);
      // overwrite ignores what is there
      const ow = new Float32Array(qkv.length).fill(7);
      attentionBackward({ dout, qkv, out: f.out, lse: f.lse, B, T, C, H, mask, dqkv: ow, reference });
      expect(same(ow, g)).toBe(true);
    },
  );

  it('backward at larger shapes matches the float64 analytic gradient (finite differences of a few entries)', () => {
    const B = 2;
    const T = 45;
    const C = 20;
    const H = 2;
    const rng = new Rng(77);
    const qkv = rng.f32(B * T * 3 * C, 1);
    const dout = rng.f32(B * T * C);
    const mask = makeMask(B, T, rng);
    const f = attention({ qkv, B, T, C, H, mask, reference });
    const g = attentionBackward({ dout, qkv, out: f.out, lse: f.lse, B, T, C, H, mask, reference });
    const loss = (x: Float64Array) => attentionRef(x, B, T, C, H, mask).out.reduce((s, o, i) => s + o * dout[i], 0);
    const idx = Array.from({ length: 40 }, () => rng.int(0, qkv.length));
    expectClose(
      idx.map((i) => g[i]),
      idx.map((i) => finiteDiff(loss, toF64(qkv), i)),
      2e-3,
      1e-2,
    );
  });

  it.each([
    [1, 1, 1, 8, 2],
    [2, 1, 37, 12, 3],
    [2, 5, 40, 16, 2],
    [1, 33, 70, 8, 1],
  ])('cached (KV-cache) attention: B=%i Tq=%i Tk=%i C=%i H=%i matches the last rows of full attention', (B, Tq, Tk, C, H) => {
    const rng = new Rng(Tq * 100 + Tk);
    const capacity = Tk + 3;
    const qkv = rng.f32(B * Tk * 3 * C, 1);
    const mask = makeMask(B, Tk, rng);
    const { q, k, v } = splitQkv(qkv, B, Tk, C);
    // the cache holds all Tk keys/values (capacity rows per sequence, the rest garbage)
    const kc = rng.f32(B * capacity * C, 5);
    const vc = rng.f32(B * capacity * C, 5);
    const qn = new Float32Array(B * Tq * C);
    for (let b = 0; b < B; b++) {
      kc.set(k.subarray(b * Tk * C, (b + 1) * Tk * C), b * capacity * C);
      vc.set(v.subarray(b * Tk * C, (b + 1) * Tk * C), b * capacity * C);
      qn.set(q.subarray((b * Tk + Tk - Tq) * C, (b + 1) * Tk * C), b * Tq * C);
    }
    const lse = new Float32Array(B * H * Tq);
    const out = attentionCached({ B, Tq, Tk, capacity, C, H, q: qn, k: kc, v: vc, mask, lse, reference });
    const full = attention({ qkv, B, T: Tk, C, H, mask, reference });
    const ref = attentionSplitRef(qn, k, v, B, Tq, Tk, C, H, mask);
    expectClose(out, ref.out, 1e-4, 1e-2);
    expectLse(lse, ref.lse);
    const lastRows = new Float32Array(B * Tq * C);
    for (let b = 0; b < B; b++) lastRows.set(full.out.subarray((b * Tk + Tk - Tq) * C, (b + 1) * Tk * C), b * Tq * C);
    expectClose(out, lastRows, 1e-5, 1);
  });
});

describe('attention determinism and async', () => {
  it('async gives the same bits as sync; repeated calls are identical', async () => {
    const [B, T, C, H] = [4, 80, 64, 4];
    const rng = new Rng(3);
    const qkv = rng.f32(B * T * 3 * C);
    const dout = rng.f32(B * T * C);
    const mask = makeMask(B, T, rng);
    const s = attention({ qkv, B, T, C, H, mask });
    const a = await attentionAsync({ qkv, B, T, C, H, mask });
    expect(same(s.out, a.out) && same(s.lse, a.lse)).toBe(true);
    const g1 = attentionBackward({ dout, qkv, out: s.out, lse: s.lse, B, T, C, H, mask });
    const g2 = await attentionBackwardAsync({ dout, qkv, out: s.out, lse: s.lse, B, T, C, H, mask });
    const g3 = attentionBackward({ dout, qkv, out: s.out, lse: s.lse, B, T, C, H, mask });
    expect(same(g1, g2) && same(g1, g3)).toBe(true);
    const { q, k, v } = splitQkv(qkv, B, T, C);
    const args = { B, Tq: 3, Tk: T, C, H, q: Float32Array.from(q.subarray(0, B * 3 * C)), k: Float32Array.from(k), v: Float32Array.from(v) };
    expect(same(attentionCached(args), await attentionCachedAsync(args))).toBe(true);
  });

  it('reference kernel: async gives the same bits as sync, and it is not the optimized kernel', async () => {
    const [B, T, C, H] = [2, 20, 16, 2];
    const rng = new Rng(4);
    const qkv = rng.f32(B * T * 3 * C);
    const dout = rng.f32(B * T * C);
    const mask = makeMask(B, T, rng);
    const reference = true;
    const s = attention({ qkv, B, T, C, H, mask, reference });
    const a = await attentionAsync({ qkv, B, T, C, H, mask, reference });
    expect(same(s.out, a.out) && same(s.lse, a.lse)).toBe(true);
    const g1 = attentionBackward({ dout, qkv, out: s.out, lse: s.lse, B, T, C, H, mask, reference });
    const g2 = await attentionBackwardAsync({ dout, qkv, out: s.out, lse: s.lse, B, T, C, H, mask, reference });
    expect(same(g1, g2)).toBe(true);
    const { q, k, v } = splitQkv(qkv, B, T, C);
    const args = { B, Tq: 3, Tk: T, C, H, q: Float32Array.from(q.subarray(0, B * 3 * C)), k: Float32Array.from(k), v: Float32Array.from(v) };
    const c = attentionCached({ ...args, reference });
    expect(same(c, await attentionCachedAsync({ ...args, reference }))).toBe(true);
    // the option really selects another kernel: float32 SIMD vs double scalar differ in some bits
    expect(same(s.out, attention({ qkv, B, T, C, H, mask }).out)).toBe(false);
    expect(same(g1, attentionBackward({ dout, qkv, out: s.out, lse: s.lse, B, T, C, H, mask }))).toBe(false);
    expect(same(c, attentionCached(args))).toBe(false);
  });

  it('every (b, h, query block) is computed by one thread alone: the thread count changes no bit', () => {
    const body = `
      const [B, T, C, H] = [3, 70, 48, 4];
      const qkv = fill(B * T * 3 * C, 1), dout = fill(B * T * C, 2);
      const mask = new Int32Array(B * T).fill(1); mask[T] = 0; mask[2 * T + 5] = 0;
      const out = new Float32Array(B * T * C), lse = new Float32Array(B * H * T), dqkv = new Float32Array(B * T * 3 * C);
      addon.attention({ qkv, B, T, C, H, mask, out, lse });
      addon.attentionBackward({ dout, qkv, out, lse, B, T, C, H, mask, dqkv });
      return [out, lse, dqkv];`;
    const runs = [1, 2, 3].map((t) => digestWithThreads(t, body));
    expect(runs.map((r) => r.threads)).toEqual([1, 2, 3]);
    expect(new Set(runs.map((r) => r.digest)).size).toBe(1);
  });
});
