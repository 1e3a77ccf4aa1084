// attention_decode (KV-cache decode step) against the float64 reference attention, every SIMD path.
import { attentionCached, attentionDecode, attentionDecodeAsync, setSimdLevel } from '../src/native';
import { expectClose } from './helpers/compare';
import { expectRejects, expectThrows } from './helpers/errors';
import { Rng } from './helpers/random';

const CASES = [
  { B: 1, Tq: 1, Tk: 1, capacity: 1, C: 8, H: 1 },
  { B: 3, Tq: 1, Tk: 37, capacity: 40, C: 128, H: 4 }, // hd 32
  { B: 2, Tq: 3, Tk: 19, capacity: 19, C: 128, H: 2 }, // hd 64
  { B: 2, Tq: 2, Tk: 9, capacity: 12, C: 48, H: 4 }, // hd 12: generic path
  { B: 1, Tq: 1, Tk: 70, capacity: 70, C: 16, H: 2 }, // hd 8
  { B: 2, Tq: 1, Tk: 41, capacity: 44, C: 32, H: 2 }, // hd 16
  { B: 1, Tq: 2, Tk: 30, capacity: 30, C: 128, H: 1 }, // hd 128
];

describe.each(['portable', 'avx2', 'avx512'] as const)('attentionDecode (%s)', (level) => {
  beforeAll(() => setSimdLevel(level));
  afterAll(() => setSimdLevel('avx512'));
  test.each(CASES)('matches the reference attention %p', (c) => {
    const rng = new Rng(c.Tk * 31 + c.C);
    const q = rng.f32(c.B * c.Tq * c.C);
    const k = rng.f32(c.B * c.capacity * c.C);
    const v = rng.f32(c.B * c.capacity * c.C);
    const lse = new Float32Array(c.B * c.H * c.Tq);
    const lseRef = new Float32Array(c.B * c.H * c.Tq);
    const out = attentionDecode({ ...c, q, k, v, lse });
    const ref = attentionCached({ ...c, q, k, v, lse: lseRef, reference: true });
    expectClose(out, ref, 1e-4, 1e-2); // float accumulation over up to 70 keys, values ~N(0,1)
    expectClose(lse, lseRef, 1e-5, 1e-2);
    const ownRef = attentionDecode({ ...c, q, k, v, reference: true });
    expectClose(ownRef, ref, 1e-6, 1e-3);
  });
  test('async is bit-identical to sync; repeated calls identical', async () => {
    const c = CASES[1];
    const rng = new Rng(5);
    const args = { ...c, q: rng.f32(c.B * c.Tq * c.C), k: rng.f32(c.B * c.capacity * c.C), v: rng.f32(c.B * c.capacity * c.C) };
    const a = attentionDecode(args);
    expect(Array.from(await attentionDecodeAsync(args))).toEqual(Array.from(a));
    expect(Array.from(attentionDecode(args))).toEqual(Array.from(a));
  });
});

test('attentionDecode bad input names the argument', async () => {
  const ok = { B: 1, Tq: 1, Tk: 2, C: 8, H: 2, q: new Float32Array(8), k: new Float32Array(16), v: new Float32Array(16) };
  expectThrows(() => attentionDecode({ ...ok, H: 3 }), 'RangeError', /`H`/);
  expectThrows(() => attentionDecode({ ...ok, Tq: 3 }), 'RangeError', /`Tk`/);
  expectThrows(() => attentionDecode({ ...ok, Tk: 1.5 }), 'TypeError', /`Tk`/);
  expectThrows(() => attentionDecode({ ...ok, capacity: 1 }), 'RangeError', /`capacity`/);
  expectThrows(() => attentionDecode({ ...ok, q: new Float32Array(7) }), 'RangeError', /`q`/);
  expectThrows(() => attentionDecode({ ...ok, k: new Int32Array(16) as unknown as Float32Array }), 'TypeError', /`k`/);
  expectThrows(() => attentionDecode({ ...ok, v: new Float32Array(15) }), 'RangeError', /`v`/);
  expectThrows(() => attentionDecode({ ...ok, lse: new Float32Array(3) }), 'RangeError', /`lse`/);
  expectThrows(() => attentionDecode({ ...ok, out: new Float32Array(9) }), 'RangeError', /`out`/);
  expectThrows(() => attentionDecode({ ...ok, reference: 'yes' as unknown as boolean }), 'TypeError', /`reference`/);
  const det = new Float32Array(8);
  structuredClone(det.buffer, { transfer: [det.buffer] });
  expectThrows(() => attentionDecode({ ...ok, q: det }), 'RangeError', /`q`/);
  await expectRejects(attentionDecodeAsync({ ...ok, B: 0 }), 'RangeError', /`B`/);
});
