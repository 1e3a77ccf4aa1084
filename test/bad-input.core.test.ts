// Every core entry point and the GELU kernels reject bad arguments with a typed error naming them.
import { gelu, geluAsync, geluBackward, geluBackwardAsync, loadNative } from '../src/native';
import { expectRejects, expectThrows } from './helpers/errors';

const native = loadNative() as unknown as Record<string, (a: unknown) => unknown>;
const f32 = (x: unknown) => x as Float32Array;

describe('bad input: core', () => {
  it('setNumThreads / setSimdLevel name their argument', () => {
    expectThrows(() => native.setNumThreads({ threads: 'x' }), 'TypeError', /integer for `threads`/);
    expectThrows(() => native.setNumThreads({ threads: 1.5 }), 'TypeError', /`threads`/);
    expectThrows(() => native.setNumThreads({ threads: -1 }), 'RangeError', /`threads`/);
    expectThrows(() => native.setNumThreads({ threads: 1e9 }), 'RangeError', /`threads`/);
    expectThrows(() => native.setNumThreads(undefined), 'TypeError', /options object/);
    expectThrows(() => native.setSimdLevel({ level: 'sse9' }), 'TypeError', /one of 'portable', 'avx2', 'avx512' for `level`/);
  });

  it('gelu rejects wrong types, lengths and detached buffers', async () => {
    const x = new Float32Array(8);
    expectThrows(() => gelu({ input: f32(new Float64Array(8)) }), 'TypeError', /Float32Array for `input` but received Float64Array/);
    expectThrows(() => gelu({ input: x, out: new Float32Array(7) }), 'RangeError', /Expected Float32Array of length 8 for `out` but received length 7/);
    expectThrows(() => gelu({ input: f32('abc'), out: x }), 'TypeError', /`input`.*'abc'/);
    expectThrows(() => geluBackward({ input: x, dout: new Float32Array(9) }), 'RangeError', /`dout`/);
    expectThrows(() => geluBackward({ input: x, dout: x, accumulate: 1 as unknown as boolean }), 'TypeError', /boolean for `accumulate`/);
    const buf = new Float32Array(8);
    structuredClone(buf.buffer, { transfer: [buf.buffer] });
    expectThrows(() => gelu({ input: x, out: buf }), 'RangeError', /detached/);
    await expectRejects(geluAsync({ input: x, out: new Float32Array(1) }), 'RangeError', /`out`/);
    const yes = 'yes' as unknown as boolean;
    expectThrows(() => gelu({ input: x, reference: yes }), 'TypeError', /boolean for `reference`/);
    expectThrows(() => geluBackward({ input: x, dout: x, reference: yes }), 'TypeError', /boolean for `reference`/);
    await expectRejects(geluAsync({ input: x, reference: yes }), 'TypeError', /boolean for `reference`/);
    await expectRejects(geluBackwardAsync({ input: x, dout: x, reference: yes }), 'TypeError', /boolean for `reference`/);
  });
});
