// Images as users bring them (issue 18): any size and aspect, sizes the 4×4 grid does not divide,
// large 16-bit originals, DICOM/NIfTI windows, RGB and 8-bit grey. The global view is letterboxed
// exactly as letterbox() says (checked against sharp's own fit 'contain'), box coordinates map both
// ways, and zooms read the full-resolution original.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { readDicom, readImageFile, readNiftiSlice } from '../../src/data/loaders';
import type { Dataset, VqaItem } from '../../src/data/types';
import { dicomBytes, niftiBytes } from '../helpers/datasets';
import { checkEnv, make } from '../../src/env';
import {
  cellBox,
  cellOf,
  COLUMNS,
  cropRaw,
  executeToolCall,
  letterbox,
  originalToView,
  RegionError,
  renderView,
  to8Bit,
  ToolSession,
  viewToOriginal,
  type Box,
  type IntensityWindow,
  type RawImage,
  type ViewImage,
} from '../../src/tools';

// Small seeded generator (no Math.random: failures must reproduce).
const lcg = (seed: number) => () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);

const grey8 = (w: number, h: number, f: (x: number, y: number) => number): RawImage => {
  const d = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) d[y * w + x] = f(x, y);
  return { data: d, width: w, height: h, channels: 1, bitDepth: 8 };
};
const grey16 = (w: number, h: number, f: (x: number, y: number) => number, defaultWindow?: IntensityWindow): RawImage => {
  const d = new Uint16Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) d[y * w + x] = f(x, y);
  return { data: d, width: w, height: h, channels: 1, bitDepth: 16, ...(defaultWindow ? { defaultWindow } : {}) };
};
const rgb8 = (w: number, h: number, f: (x: number, y: number, c: number) => number): RawImage => {
  const d = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) d[(y * w + x) * 3 + c] = f(x, y, c);
  return { data: d, width: w, height: h, channels: 3, bitDepth: 8 };
};
const px = (v: ViewImage, x: number, y: number, c = 0): number => v.data[(y * v.width + x) * v.channels + c];
const call = (s: ToolSession, name: string, args: unknown) => executeToolCall(s, { name, arguments: args });

/** Bounding box [x1, y1, x2, y2) of the non-black pixels of a view (any channel). */
function contentBox(data: Uint8Array, V: number, C: number): Box {
  let x1 = V, y1 = V, x2 = 0, y2 = 0;
  for (let y = 0; y < V; y++) {
    for (let x = 0; x < V; x++) {
      let on = false;
      for (let c = 0; c < C; c++) on ||= data[(y * V + x) * C + c] > 0;
      if (on) [x1, y1, x2, y2] = [Math.min(x1, x), Math.min(y1, y), Math.max(x2, x + 1), Math.max(y2, y + 1)];
    }
  }
  return [x1, y1, x2, y2];
}
const lbRect = (w: number, h: number, V: number): Box => {
  const l = letterbox(w, h, V);
  return [l.offsetX, l.offsetY, l.offsetX + l.contentWidth, l.offsetY + l.contentHeight];
};
/** Every pixel of the view outside rect is black. */
const barsBlack = (v: ViewImage, rect: Box): boolean => {
  for (let y = 0; y < v.height; y++) {
    for (let x = 0; x < v.width; x++) {
      if (x >= rect[0] && x < rect[2] && y >= rect[1] && y < rect[3]) continue;
      for (let c = 0; c < v.channels; c++) if (px(v, x, y, c) !== 0) return false;
    }
  }
  return true;
};

const ODD_SIZES: [number, number][] = [[4000, 30], [30, 4000], [1, 1], [3, 5], [5, 3], [1, 1000], [64, 32], [63, 64], [65, 64], [100, 37], [257, 131], [333, 100]];
const rnd = lcg(18);
const RANDOM_SIZES: [number, number, number][] = Array.from({ length: 40 }, (_, i) => [1 + Math.floor(rnd() ** 2 * 600), 1 + Math.floor(rnd() ** 2 * 600), [16, 32, 64, 96, 224][i % 5]]);
const SIZES: [number, number, number][] = [...ODD_SIZES.map(([w, h]): [number, number, number] => [w, h, 64]), ...RANDOM_SIZES];

describe('letterbox: the global view keeps the aspect, centred on black', () => {
  test('letterbox() is the rectangle sharp fit contain fills, and the one renderView fills', async () => {
    for (const [w, h, V] of SIZES) {
      const white = new Uint8Array(w * h).fill(255);
      const sharpContain = await sharp(white, { raw: { width: w, height: h, channels: 1 } })
        .resize(V, V, { fit: 'contain', background: { r: 0, g: 0, b: 0 }, kernel: 'lanczos3' })
        .toColourspace('b-w')
        .raw()
        .toBuffer();
      const ours = await renderView(white, w, h, 1, { viewSize: V, viewChannels: 1 });
      const want = lbRect(w, h, V);
      expect([w, h, V, contentBox(new Uint8Array(sharpContain), V, 1)]).toEqual([w, h, V, want]);
      expect([w, h, V, contentBox(ours.data, V, 1)]).toEqual([w, h, V, want]);
    }
    expect(letterbox(4000, 30, 64)).toMatchObject({ contentWidth: 64, contentHeight: 1, offsetX: 0, offsetY: 31 });
    expect(letterbox(3, 5, 64)).toMatchObject({ contentWidth: 38, contentHeight: 64, offsetX: 13, offsetY: 0 });
    expect(letterbox(1, 1, 64)).toMatchObject({ contentWidth: 64, contentHeight: 64, offsetX: 0, offsetY: 0, scale: 64 });
    expect(() => letterbox(0, 5, 64)).toThrow(RangeError);
  });

  test('renderView is bit-identical to sharp fit contain (grey and RGB, 1 and 3 view channels)', async () => {
    for (const [w, h, V] of SIZES.slice(0, 24)) {
      for (const ch of [1, 3] as const) {
        const data = new Uint8Array(w * h * ch).map((_, i) => (i * 37 + 11) % 251);
        for (const C of [1, 3] as const) {
          const ref = await sharp(data, { raw: { width: w, height: h, channels: ch } })
            .resize(V, V, { fit: 'contain', background: { r: 0, g: 0, b: 0 }, kernel: 'lanczos3' })
            .toColourspace(C === 1 ? 'b-w' : 'srgb')
            .removeAlpha()
            .raw()
            .toBuffer();
          const v = await renderView(data, w, h, ch, { viewSize: V, viewChannels: C });
          expect([w, h, ch, C, Buffer.from(v.data).equals(ref)]).toEqual([w, h, ch, C, true]);
        }
      }
    }
  });
});

describe('box coordinates mapped both ways', () => {
  test('original → view → original is exact; the whole image maps onto the content', () => {
    const r = lcg(7);
    for (const [w, h, V] of SIZES) {
      expect(originalToView([0, 0, w, h], w, h, V)).toEqual(lbRect(w, h, V));
      for (let k = 0; k < 25; k++) {
        const x1 = Math.floor(r() * w), y1 = Math.floor(r() * h);
        const b: Box = [x1, y1, x1 + 1 + Math.floor(r() * (w - x1)), y1 + 1 + Math.floor(r() * (h - y1))];
        expect(viewToOriginal(originalToView(b, w, h, V), w, h, V)).toEqual(b);
        // The same in a zoom's view (it shows region b): a sub-box maps there and back.
        const s: Box = [b[0] + Math.floor((r() * (b[2] - b[0])) / 2), b[1], b[2], b[3]];
        expect(viewToOriginal(originalToView(s, w, h, V, b), w, h, V, b)).toEqual(s);
      }
    }
  });

  test('view → original covers the view box; bars are clipped or refused', () => {
    const r = lcg(9);
    for (const [w, h, V] of SIZES) {
      const c = lbRect(w, h, V);
      for (let k = 0; k < 25; k++) {
        const x1 = c[0] + Math.floor(r() * (c[2] - c[0])), y1 = c[1] + Math.floor(r() * (c[3] - c[1]));
        const vb: Box = [x1, y1, x1 + 1 + Math.floor(r() * (c[2] - x1)), y1 + 1 + Math.floor(r() * (c[3] - y1))];
        const ob = viewToOriginal(vb, w, h, V);
        expect(ob[0] >= 0 && ob[1] >= 0 && ob[2] <= w && ob[3] <= h && ob[2] > ob[0] && ob[3] > ob[1]).toBe(true);
        const back = originalToView(ob, w, h, V);
        expect(back[0] <= vb[0] + 1e-9 && back[1] <= vb[1] + 1e-9 && back[2] >= vb[2] - 1e-9 && back[3] >= vb[3] - 1e-9).toBe(true);
      }
      // The whole view (bars included) is the whole image.
      expect(viewToOriginal([0, 0, V, V], w, h, V)).toEqual([0, 0, w, h]);
    }
    // 4000×30 at view 64: the content is row 31; rows 0–30 are bars.
    expect(() => viewToOriginal([0, 0, 64, 31], 4000, 30, 64)).toThrow(RegionError);
    expect(viewToOriginal([16, 31, 32, 32], 4000, 30, 64)).toEqual([1000, 0, 2000, 30]);
    expect(() => originalToView([0, 0, 1, 1], 10, 10, 64, [5, 5, 20, 20])).toThrow(RangeError);
  });

  test('a bright box in the original shows where originalToView puts it', async () => {
    const [w, h, V] = [300, 120, 64];
    const box: Box = [100, 40, 160, 80];
    const img = grey8(w, h, (x, y) => (x >= box[0] && x < box[2] && y >= box[1] && y < box[3] ? 255 : 0));
    const v = await new ToolSession(img, { viewSize: V, viewChannels: 1 }).view();
    const m = originalToView(box, w, h, V);
    const bright = contentBox(v.data.map((p) => (p > 127 ? 255 : 0)), V, 1);
    for (let i = 0; i < 4; i++) expect(Math.abs(bright[i] - m[i])).toBeLessThanOrEqual(1);
    expect(viewToOriginal(bright, w, h, V).map((c, i) => Math.abs(c - box[i]) <= 300 / 64 + 1)).toEqual([true, true, true, true]);
  });
});

describe('the 4×4 grid on sizes it does not divide', () => {
  test('cells tile every side with no gap or overlap (sides under 4: no empty cell)', () => {
    for (let n = 1; n <= 41; n++) {
      for (const span of [1, 2]) {
        const cells = Array.from({ length: 5 - span }, (_, k) => cellBox(k, 0, span, n, 7).slice(0, 3).filter((_, i) => i !== 1));
        for (const [a, b] of cells) expect(b > a && a >= 0 && b <= n).toBe(true);
        if (span === 1) {
          const covered = new Array<number>(n).fill(0);
          for (const [a, b] of cells) for (let x = a; x < b; x++) covered[x]++;
          if (n >= 4) expect(covered.every((c) => c === 1)).toBe(true); // exact tiling
          else expect(covered.every((c) => c >= 1)).toBe(true); // fewer pixels than cells: shared
        }
      }
    }
  });

  test('cellOf agrees with cellBox: a pixel belongs to the cell whose box holds it', () => {
    for (const [w, h] of [[10, 6], [257, 131], [4000, 30], [30, 4000], [3, 5], [1, 1], [7, 9]]) {
      for (let col = 0; col < 4; col++) {
        for (let row = 0; row < 4; row++) {
          const b = cellBox(col, row, 1, w, h);
          // Every pixel inside a cell of a side >= 4 names that cell.
          if (w >= 4 && h >= 4) for (const [x, y] of [[b[0], b[1]], [b[2] - 1, b[3] - 1]]) expect(cellOf([x, y, x + 1, y + 1], w, h)).toBe(`${COLUMNS[col]}${row + 1}`);
          const named = cellOf(b, w, h);
          const nb = cellBox(COLUMNS.indexOf(named[0]), Number(named[1]) - 1, 1, w, h);
          const cx = (b[0] + b[2]) / 2, cy = (b[1] + b[3]) / 2;
          expect(cx >= nb[0] && cx <= nb[2] && cy >= nb[1] && cy <= nb[3]).toBe(true);
        }
      }
    }
    expect(cellOf([2, 0, 3, 1], 10, 10)).toBe('A1'); // cell A is [0, 3) on a 10-pixel side (edges 0, 3, 5, 8, 10)
    expect(cellBox(0, 0, 1, 10, 10)).toEqual([0, 0, 3, 3]);
  });
});

describe('every tool on images as they come', () => {
  const kinds: [string, (w: number, h: number) => RawImage][] = [
    ['8-bit grey', (w, h) => grey8(w, h, (x, y) => (x * 7 + y * 3) % 256)],
    ['16-bit grey', (w, h) => grey16(w, h, (x, y) => 1000 + ((x * 13 + y * 5) % 3000))],
    ['16-bit grey with a DICOM window', (w, h) => grey16(w, h, (x, y) => 1000 + ((x * 13 + y * 5) % 3000), { center: 2000, width: 800 })],
    ['RGB', (w, h) => rgb8(w, h, (x, y, c) => (x * (c + 1) + y * 3) % 256)],
  ];
  const CALLS: [string, Record<string, unknown>][] = [
    ['view_original', {}],
    ['zoom_in', { cell: 'A1' }],
    ['zoom_in', { cell: 'D4' }],
    ['zoom_in', { cell: 'C2', span: 2 }],
    ['zoom_in', { cell: 'B3', scale: 0.25 }],
    ['zoom_in', { bbox: [0, 0, 1, 1] }],
    ['zoom_in', { bbox: [-50, -50, 2, 3] }],
    ['crop_multi', { bboxes: [{ cell: 'D1' }, { bbox: [0, 0, 1e6, 1e6] }, { cell: 'A4' }] }],
    ['window', { center: 2000, width: 500 }],
    ['enhance', { method: 'clahe' }],
    ['enhance', { method: 'sharpen' }],
    ['enhance', { method: 'equalize' }],
    ['rotate', { angle: 90 }],
    ['flip', { axis: 'horizontal' }],
  ];
  test.each(ODD_SIZES.slice(0, 6).concat([[257, 131]]))('%ix%i: every call works, every view is letterboxed black', async (w, h) => {
    for (const [i, [kind, make]] of kinds.entries()) {
      const img = make(w, h);
      // Both view channel counts on each kind, spread over the sizes.
      for (const C of [(i + w) % 2 ? 1 : 3] as const) {
        const s = new ToolSession(img, { viewSize: 32, viewChannels: C });
        for (const [name, args] of CALLS) {
          const r = await call(s, name, args);
          if (name === 'window' && img.channels === 3) {
            expect(r.error).toMatch(/greyscale/);
            continue;
          }
          expect([kind, name, args, r.error]).toEqual([kind, name, args, undefined]);
          expect(r.images.length).toBe(r.boxes.length);
          for (const [k, v] of r.images.entries()) {
            expect([v.width, v.height, v.channels, v.data.length]).toEqual([32, 32, C, 32 * 32 * C]);
            const b = r.boxes[k];
            expect(b[0] >= 0 && b[1] >= 0 && b[2] <= w && b[3] <= h && b[2] > b[0] && b[3] > b[1]).toBe(true);
            const bw = b[2] - b[0], bh = b[3] - b[1];
            const rect = name === 'rotate' ? lbRect(bh, bw, 32) : lbRect(bw, bh, 32);
            expect([kind, name, barsBlack(v, rect)]).toEqual([kind, name, true]);
          }
        }
      }
    }
  });

  test('cells on a 1×1 and a 3×5 image are pixels of the image, not errors', async () => {
    const one = new ToolSession(grey8(1, 1, () => 77), { viewSize: 8, viewChannels: 1 });
    for (const c of ['A1', 'B2', 'C3', 'D4']) {
      const r = await call(one, 'zoom_in', { cell: c });
      expect(r.boxes).toEqual([[0, 0, 1, 1]]);
      expect(r.images[0].data.every((p) => p === 77)).toBe(true);
    }
    const s = new ToolSession(grey8(3, 5, (x, y) => 10 * x + y), { viewSize: 8, viewChannels: 1 });
    const r = await call(s, 'zoom_in', { cell: 'C3' });
    expect(r.ok).toBe(true);
    expect(r.boxes[0][2] - r.boxes[0][0]).toBe(1);
  });

  test('a zoom box partly outside is clamped; a 1-pixel box is that pixel', async () => {
    const img = rgb8(40, 25, (x, y, c) => (x * 5 + y * 9 + c * 50) % 256);
    const s = new ToolSession(img, { viewSize: 16, viewChannels: 3 });
    const r = await call(s, 'zoom_in', { bbox: [30, -7, 55, 10] });
    expect(r.boxes).toEqual([[30, 0, 40, 10]]);
    const one = await call(s, 'zoom_in', { bbox: [17, 11, 18, 12] });
    expect(one.boxes).toEqual([[17, 11, 18, 12]]);
    for (let c = 0; c < 3; c++) expect(new Set(Array.from({ length: 256 }, (_, i) => one.images[0].data[i * 3 + c]))).toEqual(new Set([img.data[(11 * 40 + 17) * 3 + c]]));
    expect((await call(s, 'zoom_in', { bbox: [40, 0, 60, 10] })).error).toMatch(/outside the 40x25 image/);
  });
});

describe('zooms read the full-resolution original', () => {
  test('a 1-pixel checkerboard is grey at the global view and exact in the zoom (non-square, 8-bit)', async () => {
    const [w, h] = [512, 384];
    const img = grey8(w, h, (x, y) => ((x + y) & 1 ? 255 : 0));
    const s = new ToolSession(img, { viewSize: 64, viewChannels: 1 });
    const g = (await call(s, 'view_original', {})).images[0];
    const c = lbRect(w, h, 64);
    expect(c).toEqual([0, 8, 64, 56]);
    for (let y = c[1] + 2; y < c[3] - 2; y++) for (let x = 2; x < 62; x++) expect(Math.abs(px(g, x, y) - 128)).toBeLessThan(8);
    expect(barsBlack(g, c)).toBe(true);
    const z = await call(s, 'zoom_in', { bbox: [301, 117, 365, 181] }); // 64×64: 1:1
    for (let y = 0; y < 64; y++) for (let x = 0; x < 64; x++) expect(px(z.images[0], x, y)).toBe((x + 301 + y + 117) & 1 ? 255 : 0);
  });

  test('4096×4096 16-bit with a default window: a detail invisible at the global view shows in the zoom', async () => {
    const N = 4096;
    const at = 2048;
    // A 16×16 checkerboard of ±30 stored units around 1000, window 1000 ± 50: at the global view
    // (64× downsampled) it averages out; in the zoom every pixel is 0.2 or 0.8 of the window.
    const data = new Uint16Array(N * N).fill(1000);
    for (let y = at; y < at + 16; y++) for (let x = at; x < at + 16; x++) data[y * N + x] = (x + y) & 1 ? 1030 : 970;
    const img: RawImage = { data, width: N, height: N, channels: 1, bitDepth: 16, defaultWindow: { center: 1000, width: 100 } };
    const s = new ToolSession(img, { viewSize: 64, viewChannels: 1 });
    const g = (await call(s, 'view_original', {})).images[0];
    const bg = Math.round(((1000 - 950) / 100) * 255);
    expect(Math.max(...Array.from(g.data).map((p) => Math.abs(p - bg)))).toBeLessThanOrEqual(2);
    const z = await call(s, 'zoom_in', { bbox: [at - 8, at - 8, at + 24, at + 24] }); // 32×32 → 64: 2× up
    const vals = Array.from(z.images[0].data);
    expect(Math.max(...vals) - Math.min(...vals)).toBeGreaterThan(100);
    const one = await call(new ToolSession(img, { viewSize: 16, viewChannels: 1 }), 'zoom_in', { bbox: [at, at, at + 16, at + 16] });
    expect(Buffer.from(one.images[0].data).equals(Buffer.from(to8Bit(cropRaw(img, [at, at, at + 16, at + 16]), { center: 1000, width: 100 })))).toBe(true);
  });
});

describe('16-bit windows persist into zooms (crops keep the global view grey levels)', () => {
  // Left half stored 1000, right half 1100 (flat), so a resampled view keeps the exact levels.
  const halves = (w: number, h: number, dw?: IntensityWindow): RawImage => grey16(w, h, (x) => (x < w / 2 ? 1000 : 1100), dw);
  const levels = async (s: ToolSession, box?: Box): Promise<[number, number]> => {
    const v = box ? (await call(s, 'zoom_in', { bbox: box })).images[0] : await s.view();
    const [l, r] = [originalToView([0, 0, 1, 1], s.image.width, s.image.height, 32, box), originalToView([s.image.width - 1, 0, s.image.width, 1], s.image.width, s.image.height, 32, box)];
    const y = Math.floor(letterbox(box ? box[2] - box[0] : s.image.width, box ? box[3] - box[1] : s.image.height, 32).offsetY + 1);
    return [px(v, Math.floor(l[0]) + 1, y), px(v, Math.floor(r[2]) - 2, y)];
  };
  // Resampled flat regions keep their level to within one grey level (libvips' fixed-point kernels).
  const near = (got: number, want: number): void => expect([got, Math.abs(got - want) <= 1]).toEqual([got, true]);
  const nearBoth = (got: [number, number], want: number[]): void => {
    near(got[0], want[0]);
    near(got[1], want[1]);
  };

  test.each([
    ['full stored range (no default window)', undefined, [0, 255]],
    ['DICOM-style default window', { center: 1050, width: 400 }, [Math.round(0.375 * 255), Math.round(0.625 * 255)]],
  ])('%s', async (_name, dw, want) => {
    const img = halves(200, 90, dw as IntensityWindow | undefined);
    const s = new ToolSession(img, { viewSize: 32, viewChannels: 1 });
    nearBoth(await levels(s), want);
    near((await levels(s, [0, 0, 60, 90]))[0], want[0]);
    near((await levels(s, [140, 10, 200, 80]))[1], want[1]);
    // A window call changes both, until view_original restores the default.
    await call(s, 'window', { center: 1100, width: 200 });
    nearBoth(await levels(s), [0, 128]);
    near((await levels(s, [150, 0, 200, 90]))[1], 128);
    await call(s, 'view_original', {});
    near((await levels(s, [150, 0, 200, 90]))[1], want[1]);
  });

  describe('from files', () => {
    let dir: string;
    beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-images-'))));
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    test('DICOM (dcmjs, 16-bit signed, rescale, WindowCenter/Width): the file window is used in global view and zooms', async () => {
      const [cols, rows] = [120, 50];
      const file = path.join(dir, 'ct.dcm');
      fs.writeFileSync(file, dicomBytes(cols, rows, (x) => (x < cols / 2 ? 0 : 100), { center: 50, width: 400 }));
      const img = (await readImageFile(file)) as RawImage;
      expect(img).toMatchObject({ width: cols, height: rows, bitDepth: 16 });
      expect(img.defaultWindow).toBeDefined();
      expect(readDicom(file).image.defaultWindow).toEqual(img.defaultWindow);
      const s = new ToolSession(img, { viewSize: 32, viewChannels: 1 });
      // HU 0 and 100 in window 50 ± 200: (0 − (−150)) / 400 and (100 − (−150)) / 400 of 255.
      const want = [Math.round((150 / 400) * 255), Math.round((250 / 400) * 255)];
      nearBoth(await levels(s), want);
      near((await levels(s, [0, 0, 30, 50]))[0], want[0]);
      near((await levels(s, [90, 0, 120, 50]))[1], want[1]);
    });

    test('NIfTI (no window in the file): one full-range window for the whole slice, zooms included', async () => {
      const [nx, ny] = [90, 40];
      const file = path.join(dir, 'mr.nii');
      fs.writeFileSync(file, niftiBytes(nx, ny, 1, (x) => (x < nx / 2 ? -500 : 300)));
      const img = (await readNiftiSlice(file)).image;
      expect(img).toMatchObject({ width: nx, height: ny, bitDepth: 16 });
      const s = new ToolSession(img, { viewSize: 32, viewChannels: 1 });
      nearBoth(await levels(s), [0, 255]);
      // A zoom inside the bright half alone still shows it at 255, not at its own range's black.
      near((await levels(s, [60, 5, 90, 35]))[1], 255);
      near((await levels(s, [0, 5, 30, 35]))[0], 0);
    });

    test('PNG files: 8-bit grey, RGB and 16-bit grey of odd sizes load and render through the env', async () => {
      const files: [string, Buffer][] = [
        ['wide.png', await sharp(Buffer.alloc(700 * 9, 90), { raw: { width: 700, height: 9, channels: 1 } }).png().toBuffer()],
        ['rgb.png', await sharp(Buffer.from(Array.from({ length: 37 * 101 * 3 }, (_, i) => (i * 7) % 256)), { raw: { width: 37, height: 101, channels: 3 } }).png().toBuffer()],
        ['deep.png', await sharp(new Uint16Array(33 * 17).map((_, i) => i * 100), { raw: { width: 33, height: 17, channels: 1 } }).toColourspace('grey16').png().toBuffer()],
      ];
      const items: VqaItem[] = [];
      for (const [name, bytes] of files) {
        fs.writeFileSync(path.join(dir, name), bytes);
        items.push({ id: name, image: await readImageFile(path.join(dir, name)), question: 'Which?', options: ['a', 'b'], answer: 0, modality: 'x', questionType: 'q' });
      }
      expect(items.map((i) => [i.image.width, i.image.height, i.image.channels, i.image.bitDepth])).toEqual([[700, 9, 1, 8], [37, 101, 3, 8], [33, 17, 1, 16]]);
      const ds: Dataset = {
        name: 'odd',
        size: items.length,
        get: async (i) => items[i],
        stream: async function* () {
          yield* items;
        },
      };
      const env = make('MedGym-Dataset-v0', { dataset: ds, viewSize: 32 });
      for (let i = 0; i < items.length; i++) {
        const { observation } = await env.reset({ options: { index: i } });
        const { width, height } = items[i].image;
        expect(observation.originalSize).toEqual({ width, height });
        expect(observation.text).toContain(`Image size: ${width}x${height} pixels.`);
        expect(barsBlack(observation.images[0], lbRect(width, height, 32))).toBe(true);
        const r = await env.step('<tool_call>{"name": "zoom_in", "arguments": {"cell": "D4", "span": 1}}</tool_call>');
        expect(r.info.toolCalls[0]).toMatchObject({ ok: true, boxes: [cellBox(3, 3, 1, width, height)] });
      }
      expect(await checkEnv(env)).toEqual([]);
    });
  });
});
