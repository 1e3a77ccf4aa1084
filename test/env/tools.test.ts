// Every tool checked pixel-wise on synthetic inputs. Views the size of the region involve no
// resampling, so the expected pixels are exact; resampled cases use constant regions.
import { cropRaw, equalize, executeToolCall, ToolSession, to8Bit, type RawImage, type ViewImage } from '../../src/tools';

const grey8 = (w: number, h: number, f: (x: number, y: number) => number): RawImage => {
  const d = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) d[y * w + x] = f(x, y);
  return { data: d, width: w, height: h, channels: 1, bitDepth: 8 };
};
const grey16 = (w: number, h: number, f: (x: number, y: number) => number): RawImage => {
  const d = new Uint16Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) d[y * w + x] = f(x, y);
  return { data: d, width: w, height: h, channels: 1, bitDepth: 16 };
};
const rgb8 = (w: number, h: number): RawImage => {
  const d = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) [d[3 * i], d[3 * i + 1], d[3 * i + 2]] = [i % 251, (i * 7) % 253, (i * 13) % 255];
  return { data: d, width: w, height: h, channels: 3, bitDepth: 8 };
};
const ramp = (x: number, y: number): number => (x * 3 + y * 5) % 256;
const px = (v: ViewImage, x: number, y: number, c = 0): number => v.data[(y * v.width + x) * v.channels + c];
const call = (s: ToolSession, name: string, args: unknown) => executeToolCall(s, { name, arguments: args });

describe('zoom_in', () => {
  test('bbox crop is exact at 1:1', async () => {
    const img = grey8(64, 64, ramp);
    const r = await call(new ToolSession(img, { viewSize: 32, viewChannels: 1 }), 'zoom_in', { bbox: [8, 16, 40, 48] });
    expect(r.ok).toBe(true);
    expect(r.boxes).toEqual([[8, 16, 40, 48]]);
    expect(Buffer.from(r.images[0].data).equals(Buffer.from(cropRaw(img, [8, 16, 40, 48]).data as Uint8Array))).toBe(true);
  });
  test('grid cell and span address the 4×4 grid', async () => {
    const img = grey8(128, 128, ramp);
    const s = new ToolSession(img, { viewSize: 32, viewChannels: 1 });
    const b3 = await call(s, 'zoom_in', { cell: 'B3' });
    expect(b3.boxes).toEqual([[32, 64, 64, 96]]);
    expect(px(b3.images[0], 0, 0)).toBe(ramp(32, 64));
    expect(px(b3.images[0], 31, 31)).toBe(ramp(63, 95));
    const c1 = await call(s, 'zoom_in', { cell: 'c1', span: 2 });
    expect(c1.boxes).toEqual([[64, 0, 128, 64]]);
    expect((await call(s, 'zoom_in', { cell: 'D1', span: 2 })).error).toMatch(/runs past/);
    expect((await call(s, 'zoom_in', { cell: 'E9' })).error).toMatch(/Expected cell like/);
  });
  test('boxes are clamped to the image; boxes outside or inverted are errors', async () => {
    const img = grey8(64, 64, ramp);
    const s = new ToolSession(img, { viewSize: 16, viewChannels: 1 });
    const r = await call(s, 'zoom_in', { bbox: [-10, -10, 16, 16] });
    expect(r.boxes).toEqual([[0, 0, 16, 16]]);
    expect(px(r.images[0], 5, 7)).toBe(ramp(5, 7));
    expect((await call(s, 'zoom_in', { bbox: [100, 100, 200, 200] })).error).toMatch(/outside the 64x64 image/);
    expect((await call(s, 'zoom_in', { bbox: [30, 10, 20, 40] })).error).toMatch(/x2 > x1/);
    expect((await call(s, 'zoom_in', { bbox: [1, 2, 'abc', 4] })).error).toBe("Expected number for bbox[2] but received 'abc' of type string");
    expect((await call(s, 'zoom_in', { bbox: [1e308, -1e308, 1e308, 1e308] })).ok).toBe(false);
    expect((await call(s, 'zoom_in', { bbox: [-1e308, -1e308, 1e308, 1e308] })).boxes).toEqual([[0, 0, 64, 64]]);
  });
  test('scale grows the box about its centre', async () => {
    const s = new ToolSession(grey8(64, 64, ramp), { viewSize: 16, viewChannels: 1 });
    expect((await call(s, 'zoom_in', { bbox: [24, 24, 40, 40], scale: 2 })).boxes).toEqual([[16, 16, 48, 48]]);
  });
  test('downsampling a constant region keeps its value; non-square regions are letterboxed black', async () => {
    const img = grey8(256, 256, (x) => (x < 128 ? 40 : 200));
    const s = new ToolSession(img, { viewSize: 32, viewChannels: 1 });
    const v = (await call(s, 'zoom_in', { bbox: [0, 0, 256, 256] })).images[0];
    expect(px(v, 2, 10)).toBe(40);
    expect(px(v, 29, 10)).toBe(200);
    const wide = (await call(s, 'zoom_in', { bbox: [0, 0, 128, 64] })).images[0];
    expect(px(wide, 10, 0)).toBe(0);
    expect(px(wide, 10, 31)).toBe(0);
    expect(px(wide, 10, 16)).toBe(40);
  });
});

describe('crop_multi', () => {
  test('one exact view per region, at most four', async () => {
    const img = grey8(64, 64, ramp);
    const s = new ToolSession(img, { viewSize: 16, viewChannels: 1 });
    const r = await call(s, 'crop_multi', { bboxes: [{ cell: 'A1' }, { bbox: [16, 32, 32, 48] }] });
    expect(r.images).toHaveLength(2);
    expect(r.boxes).toEqual([[0, 0, 16, 16], [16, 32, 32, 48]]);
    expect(px(r.images[1], 3, 4)).toBe(ramp(19, 36));
    const five = await call(s, 'crop_multi', { bboxes: Array(5).fill({ cell: 'A1' }) });
    expect(five.error).toMatch(/bboxes/);
    expect((await call(s, 'crop_multi', { bboxes: [{ cell: 'A1' }, { bbox: [0, 0, 'x', 1] }] })).error).toMatch(/bboxes\[1\]\.bbox\[2\]/);
  });
});

describe('window', () => {
  test('16-bit: exact linear window, then later zooms keep it until view_original', async () => {
    const img = grey16(32, 32, (x, y) => 1000 + x * 10 + y);
    const s = new ToolSession(img, { viewSize: 32, viewChannels: 1 });
    const r = await call(s, 'window', { center: 1100, width: 200 });
    expect(r.ok).toBe(true);
    const expected = to8Bit(img, { center: 1100, width: 200 });
    expect(Buffer.from(r.images[0].data).equals(Buffer.from(expected))).toBe(true);
    expect(px(r.images[0], 0, 0)).toBe(0); // 1000 is the window's lower edge
    expect(px(r.images[0], 25, 0)).toBe(255); // 1250 is above the upper edge 1200
    const z = await call(new ToolSession(img, { viewSize: 32, viewChannels: 1 }), 'zoom_in', { bbox: [0, 0, 32, 32] });
    const zw = await call(s, 'zoom_in', { bbox: [0, 0, 32, 32] });
    expect(px(zw.images[0], 10, 3)).toBe(Math.round((1103 - 1000) * 1.275));
    expect(px(z.images[0], 10, 3)).not.toBe(px(zw.images[0], 10, 3));
    const back = await call(s, 'view_original', {});
    expect(Buffer.from(back.images[0].data).equals(Buffer.from(to8Bit(img)))).toBe(true);
  });
  test('16-bit default view maps the full stored range, or the image defaultWindow', async () => {
    const img = grey16(16, 16, (x) => x * 1000);
    const v = (await call(new ToolSession(img, { viewSize: 16, viewChannels: 1 }), 'view_original', {})).images[0];
    expect(px(v, 0, 0)).toBe(0);
    expect(px(v, 15, 0)).toBe(255);
    const dw = { ...img, defaultWindow: { center: 500, width: 1000 } };
    const w = (await call(new ToolSession(dw, { viewSize: 16, viewChannels: 1 }), 'view_original', {})).images[0];
    expect(px(w, 1, 0)).toBe(255);
    expect(px(w, 0, 0)).toBe(0);
  });
  test('RGB images and bad widths are errors', async () => {
    const s = new ToolSession(rgb8(16, 16), { viewSize: 16 });
    expect((await call(s, 'window', { center: 100, width: 50 })).error).toMatch(/greyscale/);
    const g = new ToolSession(grey8(16, 16, ramp), { viewSize: 16, viewChannels: 1 });
    expect((await call(g, 'window', { center: 100, width: 0 })).error).toMatch(/width/);
  });
});

describe('rotate and flip', () => {
  const img = grey8(16, 16, ramp);
  const s = new ToolSession(img, { viewSize: 16, viewChannels: 1 });
  test.each([
    [90, (x: number, y: number) => ramp(y, 15 - x)],
    [180, (x: number, y: number) => ramp(15 - x, 15 - y)],
    [270, (x: number, y: number) => ramp(15 - y, x)],
  ])('rotate %i clockwise is exact', async (angle, src) => {
    const v = (await call(s, 'rotate', { angle })).images[0];
    for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) expect(px(v, x, y)).toBe(src(x, y));
  });
  test('rotate 45 is an error', async () => {
    expect((await call(s, 'rotate', { angle: 45 })).ok).toBe(false);
  });
  test('flip horizontal mirrors left-right, vertical top-bottom', async () => {
    const h = (await call(s, 'flip', { axis: 'horizontal' })).images[0];
    const v = (await call(s, 'flip', { axis: 'vertical' })).images[0];
    for (let y = 0; y < 16; y++) {
      for (let x = 0; x < 16; x++) {
        expect(px(h, x, y)).toBe(ramp(15 - x, y));
        expect(px(v, x, y)).toBe(ramp(x, 15 - y));
      }
    }
  });
});

describe('enhance', () => {
  test('equalize is exact histogram equalization', async () => {
    const img = grey8(16, 16, (x) => (x < 8 ? 100 : 120));
    const v = (await call(new ToolSession(img, { viewSize: 16, viewChannels: 1 }), 'enhance', { method: 'equalize' })).images[0];
    expect(px(v, 0, 0)).toBe(0);
    expect(px(v, 15, 0)).toBe(255);
    const r = grey8(16, 16, ramp);
    const e = (await call(new ToolSession(r, { viewSize: 16, viewChannels: 1 }), 'enhance', { method: 'equalize' })).images[0];
    expect(Buffer.from(e.data).equals(Buffer.from(equalize(r.data as Uint8Array, 1)))).toBe(true);
  });
  test('sharpen: flat stays flat, a step edge overshoots on both sides', async () => {
    const flat = (await call(new ToolSession(grey8(32, 32, () => 90), { viewSize: 32, viewChannels: 1 }), 'enhance', { method: 'sharpen' })).images[0];
    expect(flat.data.every((v) => v === 90)).toBe(true);
    const edge = (await call(new ToolSession(grey8(32, 32, (x) => (x < 16 ? 60 : 180)), { viewSize: 32, viewChannels: 1 }), 'enhance', { method: 'sharpen' })).images[0];
    expect(px(edge, 2, 10)).toBe(60);
    expect(px(edge, 29, 10)).toBe(180);
    expect(px(edge, 15, 10)).toBeLessThan(60);
    expect(px(edge, 16, 10)).toBeGreaterThan(180);
  });
  test('clahe: flat stays flat, a low-contrast ramp gets a wider range', async () => {
    const flat = (await call(new ToolSession(grey8(32, 32, () => 90), { viewSize: 32, viewChannels: 1 }), 'enhance', { method: 'clahe' })).images[0];
    expect(new Set(flat.data).size).toBe(1);
    const ramp2 = grey8(32, 32, (x) => 100 + (x >> 1));
    const v = (await call(new ToolSession(ramp2, { viewSize: 32, viewChannels: 1 }), 'enhance', { method: 'clahe' })).images[0];
    const row = Array.from({ length: 32 }, (_, x) => px(v, x, 16));
    // Local (tile-wise) equalization: the 16 grey levels of the input spread much wider.
    expect(Math.max(...row) - Math.min(...row)).toBeGreaterThan(50);
  });
  test('clahe and sharpen return a view of the right shape that differs from the input', async () => {
    const img = grey8(32, 32, (x, y) => 100 + ((x >> 2) & 1) * 20 + (y % 3));
    const s = new ToolSession(img, { viewSize: 32, viewChannels: 1 });
    for (const method of ['clahe', 'sharpen']) {
      const v = (await call(s, 'enhance', { method })).images[0];
      expect(v.data.length).toBe(32 * 32);
      expect(Buffer.from(v.data).equals(Buffer.from(img.data as Uint8Array))).toBe(false);
    }
    expect((await call(s, 'enhance', { method: 'magic' })).error).toMatch(/method/);
  });
});

describe('channels and errors', () => {
  test('RGB zoom_in and rotate are exact per channel', async () => {
    const img = rgb8(32, 32);
    const s = new ToolSession(img, { viewSize: 16, viewChannels: 3 });
    expect((await call(s, 'zoom_in', { cell: 'B3', span: 1 })).images[0].width).toBe(16);
    const c = cropRaw(img, [8, 16, 16, 24]);
    const big = new ToolSession(img, { viewSize: 8, viewChannels: 3 });
    const zb = (await call(big, 'zoom_in', { cell: 'B3' })).images[0];
    expect(Buffer.from(zb.data).equals(Buffer.from(c.data as Uint8Array))).toBe(true);
    const r = (await call(new ToolSession(img, { viewSize: 32, viewChannels: 3 }), 'rotate', { angle: 90 })).images[0];
    for (const [x, y] of [[0, 0], [5, 9], [31, 31]]) for (let ch = 0; ch < 3; ch++) expect(px(r, x, y, ch)).toBe(img.data[((31 - x) * 32 + y) * 3 + ch]);
  });
  test('RGB stays exact at 3 channels; grey is replicated to 3; grey RGB collapses exactly to 1', async () => {
    const img = rgb8(16, 16);
    const v = (await call(new ToolSession(img, { viewSize: 16, viewChannels: 3 }), 'view_original', {})).images[0];
    expect(Buffer.from(v.data).equals(Buffer.from(img.data as Uint8Array))).toBe(true);
    const g = grey8(16, 16, ramp);
    const g3 = (await call(new ToolSession(g, { viewSize: 16, viewChannels: 3 }), 'view_original', {})).images[0];
    expect([px(g3, 3, 5, 0), px(g3, 3, 5, 1), px(g3, 3, 5, 2)]).toEqual([ramp(3, 5), ramp(3, 5), ramp(3, 5)]);
    const greyRgb: RawImage = { ...img, data: new Uint8Array(16 * 16 * 3).map((_, i) => ramp(Math.floor(i / 3) % 16, Math.floor(i / 48))) };
    const g1 = (await call(new ToolSession(greyRgb, { viewSize: 16, viewChannels: 1 }), 'view_original', {})).images[0];
    expect(g1.channels).toBe(1);
    expect(Math.abs(px(g1, 3, 5) - ramp(3, 5))).toBeLessThanOrEqual(1);
  });
  test('unknown tools, bad names and extra keys are answered, not thrown', async () => {
    const s = new ToolSession(grey8(16, 16, ramp), { viewSize: 16, viewChannels: 1 });
    expect((await executeToolCall(s, { name: 'delete_all', arguments: {} })).error).toMatch(/unknown tool/);
    expect((await executeToolCall(s, { name: 42, arguments: {} })).error).toMatch(/Expected string for name/);
    expect((await call(s, 'view_original', { x: 1 })).error).toMatch(/Unrecognized key/);
    expect((await call(s, 'zoom_in', null)).error).toMatch(/Expected object for arguments/);
    expect((await call(s, 'zoom_in', { cell: 'A1', bbox: [0, 0, 1, 1] })).error).toMatch(/exactly one of bbox or cell/);
  });
  test('bad images are refused at session creation', () => {
    expect(() => new ToolSession({ data: new Uint8Array(10), width: 4, height: 4, channels: 1, bitDepth: 8 })).toThrow(/Expected 16 samples/);
    expect(() => new ToolSession({ data: new Uint8Array(16), width: 4, height: 4, channels: 1, bitDepth: 16 })).toThrow(/Uint16Array/);
  });
});
