// M-RoPE position ids for one unpadded sequence: equal to the reference's get_rope_index
// (python/reference/qwen2_vl_text.py, via make_fixtures.py) on the tiny fixtures' single sequences and
// on the real rows of their left-padded batch, decode steps included; a sequence computed in segments
// equals it computed at once; malformed input is named.
import * as fs from 'fs';
import * as path from 'path';
import { readQwenConfig } from '../../../src/models/qwen2_vl/config';
import { RopeIndexError, ropeIndex, ropeOptions } from '../../../src/models/qwen2_vl/rope_index';
import type { RopeIndexOptions } from '../../../src/models/qwen2_vl/rope_index';

type Grid = [number, number, number];
interface Expected {
  single: { input_ids: number[]; image_grid_thw: Grid[]; position_ids: number[][]; rope_deltas: number[] }[];
  batch: { input_ids: number[][]; attention_mask: number[][]; image_indices: number[][]; image_grid_thw: Grid[]; position_ids: number[][][]; rope_deltas: number[]; decode_position_ids: number[][] };
}

const FIXTURES = ['qwen2_vl_tiny', 'qwen2_5_vl_tiny'].map((name) => {
  const dir = path.join(__dirname, '../../fixtures', name);
  const expected = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')) as Expected;
  return { name, opts: ropeOptions(readQwenConfig(dir)), expected };
});

/** The [3][n] rows of a flat positions array. */
const rows = (pos: Int32Array): number[][] => {
  const n = pos.length / 3;
  return [0, 1, 2].map((a) => Array.from(pos.subarray(a * n, (a + 1) * n)));
};

describe.each(FIXTURES)('$name', ({ opts, expected }) => {
  test('single sequences equal the reference', () => {
    expect(expected.single.length).toBeGreaterThan(0);
    for (const s of expected.single) {
      const r = ropeIndex(s.input_ids, s.image_grid_thw, opts);
      expect(rows(r.positions)).toEqual(s.position_ids);
      expect(r.ropeDelta).toBe(s.rope_deltas[0]);
      expect(r.next).toBe(s.input_ids.length + s.rope_deltas[0]);
    }
  });

  test('batch rows, padding stripped, equal the reference; decode steps are next + i', () => {
    const b = expected.batch;
    b.input_ids.forEach((ids, row) => {
      const T = ids.length;
      const real = ids.map((_, t) => t).filter((t) => b.attention_mask[row][t] === 1);
      const r = ropeIndex(real.map((t) => ids[t]), b.image_indices[row].map((k) => b.image_grid_thw[k]), opts);
      expect(rows(r.positions)).toEqual([0, 1, 2].map((a) => real.map((t) => b.position_ids[a][row][t])));
      expect(r.next - T).toBe(b.rope_deltas[row]); // HF's delta is against the padded length
      expect(b.decode_position_ids[row]).toEqual(b.decode_position_ids[row].map((_, i) => r.next + i));
      // the decode continuation through ropeIndex itself: generated text tokens, all three axes alike
      const gen = ropeIndex(new Array(b.decode_position_ids[row].length).fill(7), [], opts, r);
      for (const axis of rows(gen.positions)) expect(axis).toEqual(b.decode_position_ids[row]);
      expect(gen.ropeDelta).toBe(r.ropeDelta);
    });
  });

  test('a sequence computed in segments equals it computed at once, at every cut outside an image', () => {
    for (const s of expected.single) {
      const whole = ropeIndex(s.input_ids, s.image_grid_thw, opts);
      for (let cut = 0; cut <= s.input_ids.length; cut++) {
        if (s.input_ids[cut] === opts.imageTokenId) continue; // would split an image or its <|vision_start|> from its pads
        const a = s.input_ids.slice(0, cut), b = s.input_ids.slice(cut);
        const imagesA = countRuns(a, opts.imageTokenId);
        const ra = ropeIndex(a, s.image_grid_thw.slice(0, imagesA), opts);
        const rb = ropeIndex(b, s.image_grid_thw.slice(imagesA), opts, ra);
        expect([0, 1, 2].map((x) => [...rows(ra.positions)[x], ...rows(rb.positions)[x]])).toEqual(rows(whole.positions));
        expect(rb.next).toBe(whole.next);
        expect(rb.ropeDelta).toBe(whole.ropeDelta);
      }
    }
  });
});

function countRuns(ids: number[], tok: number): number {
  return ids.filter((v, i) => v === tok && ids[i - 1] !== tok).length;
}

// Small hand-made sequences: 1 = text, S = <|vision_start|>, I = <|image_pad|>, E = <|vision_end|>.
const Q2: RopeIndexOptions = { imageTokenId: 8, visionStartTokenId: 5, videoTokenId: 9, merge: 2, family: 'qwen2_vl' };
const Q25: RopeIndexOptions = { ...Q2, family: 'qwen2_5_vl' };
const S = 5, I = 8, E = 6, V = 9;
const pads = (k: number): number[] => new Array(k).fill(I);

test('text only: t = h = w = index, delta 0; start continues it', () => {
  const r = ropeIndex([1, 2, 3, 4], [], Q2);
  expect(rows(r.positions)).toEqual([[0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3]]);
  expect(r).toMatchObject({ next: 4, ropeDelta: 0 });
  expect(ropeIndex([], [], Q2)).toMatchObject({ positions: new Int32Array(0), next: 0, ropeDelta: 0 });
  expect(ropeIndex([1, 1], [], Q2, { next: 10 })).toMatchObject({ positions: Int32Array.from([10, 11, 10, 11, 10, 11]), next: 12, ropeDelta: 0 });
  expect(ropeIndex(Uint32Array.from([1, 1]), [], Q2, { next: 10, ropeDelta: -3 }).ropeDelta).toBe(-3);
});

test('an image at the very start, two adjacent images, and the text after them', () => {
  // S at 0, a 2×3 merged image (grid [1, 4, 6]) at 1..6 → h 1..2, w 1..3; E resumes at 1 + 3 = 4
  const ids = [S, ...pads(6), E, S, ...pads(4), S, ...pads(4), 1];
  const r = ropeIndex(ids, [[1, 4, 6], [1, 4, 4], [1, 4, 4]], Q2);
  expect(rows(r.positions)).toEqual([
    [0, 1, 1, 1, 1, 1, 1, 4, 5, 6, 6, 6, 6, 8, 9, 9, 9, 9, 11],
    [0, 1, 1, 1, 2, 2, 2, 4, 5, 6, 6, 7, 7, 8, 9, 9, 10, 10, 11],
    [0, 1, 2, 3, 1, 2, 3, 4, 5, 6, 7, 6, 7, 8, 9, 10, 9, 10, 11],
  ]);
  expect(r).toMatchObject({ next: 12, ropeDelta: 12 - ids.length });
  // a segment that starts with an image continues where the previous one stopped
  const a = ropeIndex([1, 1, 1], [], Q2);
  const b = ropeIndex(ids, [[1, 4, 6], [1, 4, 4], [1, 4, 4]], Q2, a);
  expect(Array.from(b.positions)).toEqual(Array.from(r.positions).map((v) => v + 3));
  expect(b).toMatchObject({ next: 15, ropeDelta: 15 - 3 - ids.length });
});

test('images with t > 1: Qwen2-VL advances t, Qwen2.5-VL keeps it at the image start', () => {
  const ids = [1, S, ...pads(2), 1];
  const grid: Grid[] = [[2, 2, 2]];
  expect(rows(ropeIndex(ids, grid, Q2).positions)).toEqual([[0, 1, 2, 3, 4], [0, 1, 2, 2, 4], [0, 1, 2, 2, 4]]);
  expect(rows(ropeIndex(ids, grid, Q25).positions)).toEqual([[0, 1, 2, 2, 3], [0, 1, 2, 2, 3], [0, 1, 2, 2, 3]]);
});

test('the fixture configs give the options', () => {
  expect(FIXTURES[0].opts).toEqual({ imageTokenId: 508, visionStartTokenId: 505, videoTokenId: 509, merge: 2, family: 'qwen2_vl' });
  expect(FIXTURES[1].opts.family).toBe('qwen2_5_vl');
});

test('malformed input is named', () => {
  const err = (f: () => unknown, arg: string, msg: RegExp): void => {
    let caught: unknown;
    try {
      f();
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(RopeIndexError);
    expect(caught).toBeInstanceOf(RangeError);
    expect((caught as RopeIndexError).argument).toBe(arg);
    expect((caught as Error).message).toMatch(msg);
  };
  const g: Grid[] = [[1, 4, 4]];
  err(() => ropeIndex([S, ...pads(3), E], g, Q2), 'ids', /run at 1 has 3 tokens but its grid \[1,4,4\] merges to 4/);
  err(() => ropeIndex([S, ...pads(5), E], g, Q2), 'ids', /has 5 tokens/);
  err(() => ropeIndex([S, ...pads(4), E, S, ...pads(4)], g, Q2), 'grids', /image 1 .* has no grid: 1 given/);
  err(() => ropeIndex([1, 2], g, Q2), 'grids', /1 grids but 0 <\|image_pad\|> runs/);
  err(() => ropeIndex([S, ...pads(4)], [[1, 3, 4]], Q2), 'grids', /\[0\]: h and w of \[1,3,4\] must be divisible by merge 2/);
  err(() => ropeIndex([S, ...pads(4)], [[0, 4, 4]], Q2), 'grids', /positive integers/);
  err(() => ropeIndex([1, S, V, E], [], Q2), 'ids', /<\|video_pad\|> at 2: videos are not supported/);
  err(() => ropeIndex([1, ...pads(4)], g, Q2), 'ids', /run at 1 does not follow a <\|vision_start\|>/);
  err(() => ropeIndex(pads(4), g, Q2, { next: 5 }), 'ids', /run at 0 does not follow/); // an image split across segments
  err(() => ropeIndex([1], [], { ...Q2, merge: 0 }), 'opts', /merge must be a positive integer/);
  err(() => ropeIndex([1], [], { ...Q2, family: 'llama' as never }), 'opts', /family/);
  err(() => ropeIndex([1], [], Q2, { next: -1 }), 'start', /non-negative/);
  err(() => ropeIndex([1, 1], [], Q2, { next: 0x7fffffff - 1 }), 'start', /would pass/);
  // a <|vision_start|> not followed by pads is text, as in HF
  expect(Array.from(ropeIndex([1, S, 1, S], [], Q2).positions.subarray(0, 4))).toEqual([0, 1, 2, 3]);
});

test('a 16k-token sequence with images is fast', () => {
  const ids: number[] = [];
  const grids: Grid[] = [];
  while (ids.length < 16000) {
    ids.push(...new Array(200).fill(1), S, ...pads(256), E);
    grids.push([1, 32, 32]);
  }
  ropeIndex(ids, grids, Q2); // warm up
  const t0 = process.hrtime.bigint();
  const reps = 20;
  for (let k = 0; k < reps; k++) ropeIndex(ids, grids, Q2);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6 / reps;
  expect(ms).toBeLessThan(5); // loose for a loaded CI machine; about 0.1 ms in plain node, 0.4 ms under jest
});
