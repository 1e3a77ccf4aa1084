import { generateItem, generateQuestion, generatorPool, LOOKS, MODALITIES, SynthDataset } from '../../src/data/synth';
import { QuestionOnlyBaseline } from '../../src/env/baselines';
import { splitOf } from '../../src/data/split';
import { QUESTION_TYPES } from '../../src/data/types';
import { checkImage, ToolSession, resolveRegion, cellOf, type Box, type ViewImage } from '../../src/tools';

const same = (a: ArrayLike<number>, b: ArrayLike<number>): boolean => a.length === b.length && Array.prototype.every.call(a, (v: number, i: number) => v === b[i]);

describe('MedVista-Synth-v0 generator', () => {
  test('same (seed, index) gives the same item in any order; another seed another item', () => {
    const fwd = [0, 1, 2, 3, 4, 5].map((i) => generateItem({ seed: 3 }, i));
    const back = [5, 4, 3, 2, 1, 0].map((i) => generateItem({ seed: 3 }, i)).reverse();
    fwd.forEach((a, k) => {
      expect(same(a.image.data, back[k].image.data)).toBe(true);
      expect({ ...a, image: null }).toEqual({ ...back[k], image: null });
    });
    expect(same(generateItem({ seed: 4 }, 0).image.data, fwd[0].image.data)).toBe(false);
    expect(generateQuestion({ seed: 3 }, 2)).toEqual({ ...fwd[2], image: undefined });
  });

  test('every modality and every question type: valid image, storage per look, box inside one grid cell', () => {
    // Each modality once with a rotating question type, so that all 5 types and 8 looks are covered.
    for (const [k, m] of MODALITIES.entries()) {
      for (const q of [QUESTION_TYPES[k % 5], QUESTION_TYPES[(k + 3) % 5]]) {
        const it = generateItem({ seed: 1, modalities: [m], questionTypes: [q], easyFraction: 0 }, 7);
        checkImage(it.image);
        expect(it.image.bitDepth).toBe(LOOKS[m].bitDepth);
        expect(it.image.channels).toBe(LOOKS[m].channels);
        expect(it.options).toHaveLength(4);
        expect(new Set(it.options).size).toBe(4);
        const b = it.box!;
        const corners = [cellOf([b[0], b[1], b[0] + 1, b[1] + 1], 256, 256), cellOf([b[2] - 1, b[3] - 1, b[2], b[3]], 256, 256)];
        expect(corners[0]).toBe(corners[1]);
        expect(it.meta?.cell).toBe(corners[0]);
      }
    }
  });

  test('answer letters are exactly balanced; classes and modalities roughly so', () => {
    const letters = [0, 0, 0, 0];
    const mods: Record<string, number> = {};
    for (let i = 0; i < 800; i++) {
      const q = generateQuestion({ seed: 9 }, i);
      letters[q.answer as number]++;
      mods[q.modality] = (mods[q.modality] ?? 0) + 1;
    }
    expect(letters).toEqual([200, 200, 200, 200]);
    for (const m of MODALITIES) expect(mods[m]).toBeGreaterThan(60);
  });

  test('question-only baseline (learns option priors per question) stays at chance on held-out items', () => {
    const train = Array.from({ length: 6000 }, (_, i) => generateQuestion({ seed: 5 }, i));
    const test = Array.from({ length: 3000 }, (_, i) => generateQuestion({ seed: 5 }, 100000 + i));
    const b = new QuestionOnlyBaseline();
    b.fit(train as never);
    const acc = test.filter((t) => b.predict(t.question, t.options) === t.answer).length / test.length;
    // chance 0.25; the standard error at n = 3000 is 0.008, so ±0.035 is > 4 SE.
    expect(Math.abs(acc - 0.25)).toBeLessThan(0.035);
    // The same learner does find a planted prior, so the test can fail.
    const biased = train.map((t) => ({ ...t, answer: t.options.indexOf(t.options.find((o) => o === 'metastasis') ?? '') >= 0 ? t.options.indexOf('metastasis') : t.answer }));
    const b2 = new QuestionOnlyBaseline();
    b2.fit(biased as never);
    const withMet = test.filter((t) => t.options.includes('metastasis'));
    const hit = withMet.filter((t) => b2.predict(t.question, t.options) === t.options.indexOf('metastasis')).length / withMet.length;
    expect(hit).toBeGreaterThan(0.9);
  });

  test('design rule (SPEC §5): the deciding detail is invisible at the global view, legible after zoom_in', async () => {
    const meanDiff = (a: ViewImage, b: ViewImage, box: Box): number => {
      let s = 0;
      let n = 0;
      for (let y = box[1]; y < box[3]; y++) for (let x = box[0]; x < box[2]; x++) for (let c = 0; c < a.channels; c++) {
        const i = (y * a.width + x) * a.channels + c;
        s += Math.abs(a.data[i] - b.data[i]);
        n++;
      }
      return s / n;
    };
    // attribute: texture class 0 vs 1–3; grading: 1 focus vs 4 foci (smaller area, lower bound).
    const cases = [['attribute', [1, 2, 3], 3, 8], ['grading', [3], 1.5, 2]] as const;
    for (const [qt, others, globalMax, zoomMin] of cases) {
      const opts = { seed: 2, questionTypes: [qt], easyFraction: 0, needsWindow: 0 };
      for (const m of MODALITIES) {
        const views = await Promise.all([0, ...others].map(async (cls) => {
          const it = generateItem({ ...opts, modalities: [m], forceClass: cls }, 11);
          const s = new ToolSession(it.image, { viewSize: 64 });
          const cellBox = resolveRegion({ cell: it.meta!.cell as string }, 256, 256);
          return { g: await s.view(), z: await s.view(cellBox), box: it.box!, cellBox };
        }));
        const { box, cellBox } = views[0];
        const gBox: Box = [box[0] >> 2, box[1] >> 2, (box[2] + 3) >> 2, (box[3] + 3) >> 2];
        const zBox: Box = [box[0] - cellBox[0], box[1] - cellBox[1], box[2] - cellBox[0], box[3] - cellBox[1]];
        for (let k = 1; k < views.length; k++) {
          const g = meanDiff(views[0].g, views[k].g, gBox);
          const z = meanDiff(views[0].z, views[k].z, zBox);
          expect({ qt, m, k, global: g < globalMax }).toEqual({ qt, m, k, global: true });
          expect({ qt, m, k, zoom: z > zoomMin }).toEqual({ qt, m, k, zoom: true });
        }
      }
    }
  });

  test('needs-window items (CT/MRI): the detail shows only after the window', async () => {
    for (const m of ['ct', 'mri'] as const) {
      const render = async (cls: number, withWindow: boolean) => {
        const it = generateItem({ seed: 2, modalities: [m], questionTypes: ['attribute'], easyFraction: 0, needsWindow: 1, forceClass: cls }, 3);
        expect(it.window).toBeDefined();
        const s = new ToolSession(it.image, { viewSize: 64 });
        if (withWindow) s.window = it.window;
        const z = await s.view(resolveRegion({ cell: it.meta!.cell as string }, 256, 256));
        return { z, box: it.box!, cell: resolveRegion({ cell: it.meta!.cell as string }, 256, 256) };
      };
      const diff = async (w: boolean) => {
        const [a, b] = [await render(0, w), await render(3, w)];
        let s = 0;
        let n = 0;
        const [x0, y0] = [a.cell[0], a.cell[1]];
        for (let y = a.box[1] - y0; y < a.box[3] - y0; y++) for (let x = a.box[0] - x0; x < a.box[2] - x0; x++) {
          s += Math.abs(a.z.data[(y * 64 + x) * 3] - b.z.data[(y * 64 + x) * 3]);
          n++;
        }
        return s / n;
      };
      expect(await diff(false)).toBeLessThan(1.5);
      expect(await diff(true)).toBeGreaterThan(8);
    }
  });

  test('dataset stream: seeded splits are disjoint and stable', async () => {
    const ds = new SynthDataset({ seed: 1 });
    const take = async (split: 'train' | 'test', n: number) => {
      const ids: string[] = [];
      for await (const it of ds.stream({ split, seed: 4 })) {
        ids.push(it.id);
        if (ids.length === n) break;
      }
      return ids;
    };
    const tr = await take('train', 8);
    const te = await take('test', 3);
    expect(tr.filter((i) => te.includes(i))).toEqual([]);
    for (const id of te) expect(splitOf(id, 4)).toBe('test');
    expect(await take('test', 3)).toEqual(te);
  });

  test('worker-pool generation gives the same items as the calling thread', async () => {
    const ds = new SynthDataset({ seed: 6 }, { workers: 1 });
    const [a, b] = await Promise.all([ds.get(4), ds.get(9)]);
    for (const [k, it] of [[4, a], [9, b]] as const) {
      const ref = generateItem({ seed: 6 }, k);
      expect(it.image.data.constructor.name).toBe(ref.image.data.constructor.name);
      expect(same(it.image.data, ref.image.data)).toBe(true);
      expect({ ...it, image: null }).toEqual({ ...ref, image: null });
    }
    await generatorPool(1).close();
  });

  test("optionOrder 'fixed': the first K classes in class order, letter = class, still balanced; the other draws unchanged", () => {
    const o = { seed: 4, modalities: ['xray' as const], questionTypes: ['attribute' as const], numOptions: 3, easyFraction: 0 };
    const letters = [0, 0, 0];
    for (let i = 0; i < 300; i++) {
      const f = generateQuestion({ ...o, optionOrder: 'fixed' }, i);
      const sh = generateQuestion(o, i);
      expect(f.options).toEqual(['homogeneous', 'horizontally banded', 'vertically banded']);
      expect(f.meta?.detailClass).toBe(f.answer);
      expect(f.answer).toBe(sh.answer); // the balanced letter is the same draw
      letters[f.answer as number]++;
    }
    expect(letters).toEqual([100, 100, 100]);
    expect(() => generateItem({ optionOrder: 'sorted' as never }, 0)).toThrow(/optionOrder/);
  });

  test('a high-contrast finding keeps its texture legible (no clipping at black or white)', () => {
    // xray findings are bright (offset +60): at contrast 4 the base would clip at 255 without the clamp.
    const o = { seed: 2, modalities: ['xray' as const], questionTypes: ['attribute' as const], easyFraction: 0, needsWindow: 0, contrast: 4, findingRadius: [0.09, 0.1] as [number, number] };
    const a = generateItem({ ...o, forceClass: 0 }, 5);
    const b = generateItem({ ...o, forceClass: 2 }, 5);
    const [x0, y0, x1, y1] = a.box!;
    let diff = 0;
    let n = 0;
    for (let y = y0 + 8; y < y1 - 8; y++) for (let x = x0 + 8; x < x1 - 8; x++) {
      diff += Math.abs(a.image.data[y * 256 + x] - b.image.data[y * 256 + x]);
      n++;
    }
    expect(diff / n).toBeGreaterThan(8);
  });

  test('bad knobs are refused with the knob named', () => {
    expect(() => generateItem({ numOptions: 7 }, 0)).toThrow(/numOptions/);
    expect(() => generateItem({ imageSize: 8 }, 0)).toThrow(/imageSize/);
    expect(() => generateItem({ findingRadius: [0.2, 0.3] }, 0)).toThrow(/findingRadius/);
    expect(() => generateItem({ modalities: ['pet' as never] }, 0)).toThrow(/modalities/);
  });
});
