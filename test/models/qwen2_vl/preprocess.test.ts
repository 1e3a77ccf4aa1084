// The Qwen2-VL image processor on sharp: smart_resize as transformers computes it (Python's
// half-to-even round included), patches in the processor's order (each merge group's 2×2 patches
// adjacent, groups in raster order, channel-frame-y-x inside a row), CLIP normalization, and the
// <|image_pad|> count equal to the merged patch count.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readSafetensors } from '../../../src/io/safetensors';
import { DEFAULT_PREPROCESSOR, preprocessImage, readPreprocessorConfig, smartResize } from '../../../src/models/qwen2_vl/preprocess';

// transformers' smart_resize(h, w) with factor 28 and the default min/max pixels, run in Python.
const CASES: [number, number, number, number][] = [
  [1080, 1920, 728, 1316],
  [512, 512, 504, 504],
  [42, 42, 56, 56],
  [14, 14, 56, 56],
  [70, 70, 56, 56], // round(2.5) = 2 in Python
  [10, 2000, 28, 812],
  [3000, 4000, 840, 1148],
  [300, 500, 308, 504],
  [98, 126, 112, 112], // 3.5 → 4, 4.5 → 4
  [56, 84, 56, 84],
];

test('smart_resize equals transformers\' on its corner cases', () => {
  const d = DEFAULT_PREPROCESSOR;
  for (const [h, w, eh, ew] of CASES) expect([h, w, smartResize(h, w, 28, d.minPixels, d.maxPixels)]).toEqual([h, w, [eh, ew]]);
  expect(() => smartResize(9, 100, 28, d.minPixels, d.maxPixels)).toThrow(/at least 10 pixels/);
  expect(() => smartResize(10, 2100, 28, d.minPixels, d.maxPixels)).toThrow(/aspect ratio above 200/);
});

test('patches come in the processor\'s order, frames repeated, CLIP-normalized', async () => {
  // 56×84 needs no resize (both sides are multiples of 28): pixel values survive exactly.
  const [H, W] = [56, 84];
  const data = new Uint8Array(H * W * 3);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) for (let ch = 0; ch < 3; ch++) data[(y * W + x) * 3 + ch] = (x + 2 * y + 50 * ch) % 256;
  const p = await preprocessImage({ data, width: W, height: H, channels: 3 });
  expect(p.size).toEqual([56, 84]);
  expect(p.grid).toEqual([1, 4, 6]);
  expect(p.mergedTokens).toBe(6);
  const P = 14;
  const rowLen = 3 * 2 * P * P;
  expect(p.pixelValues.length).toBe(24 * rowLen);
  const { mean, std } = DEFAULT_PREPROCESSOR;
  const pixel = (r: number, ch: number, t: number, y: number, x: number): number => p.pixelValues[r * rowLen + ((ch * 2 + t) * P + y) * P + x] * std[ch] + mean[ch];
  // row r = group g (raster over 2×3 merge blocks) × 4 + position in the 2×2 group
  for (let r = 0; r < 24; r++) {
    const g = Math.floor(r / 4);
    const [by, bx] = [Math.floor(g / 3), g % 3];
    const [my, mx] = [Math.floor((r % 4) / 2), r % 2];
    const [y0, x0] = [(2 * by + my) * P, (2 * bx + mx) * P];
    for (const [ch, t, y, x] of [[0, 0, 0, 0], [1, 1, 5, 9], [2, 0, 13, 13], [2, 1, 7, 2]]) {
      expect(Math.round(pixel(r, ch, t, y, x) * 255) + 0).toBe(data[((y0 + y) * W + x0 + x) * 3 + ch]);
    }
  }
  // the two frames are the same image
  for (let r = 0; r < 24; r += 5) for (let ch = 0; ch < 3; ch++) expect(pixel(r, ch, 0, 3, 4)).toBe(pixel(r, ch, 1, 3, 4));
});

test('grey images become RGB; resized images keep their mean; pad count = merged patches', async () => {
  const data = new Uint8Array(300 * 500).fill(128);
  const p = await preprocessImage({ data, width: 500, height: 300, channels: 1 });
  expect(p.size).toEqual([308, 504]);
  expect(p.grid).toEqual([1, 22, 36]);
  expect(p.mergedTokens).toBe((22 * 36) / 4);
  const { mean, std } = DEFAULT_PREPROCESSOR;
  for (let ch = 0; ch < 3; ch++) expect(p.pixelValues[ch * 2 * 196]).toBeCloseTo((128 / 255 - mean[ch]) / std[ch], 5);
});

test('preprocessor_config.json over the defaults; bad values named', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-pre-'));
  try {
    expect(readPreprocessorConfig(dir)).toEqual(DEFAULT_PREPROCESSOR);
    fs.writeFileSync(path.join(dir, 'preprocessor_config.json'), JSON.stringify({ min_pixels: 3136, max_pixels: 12845056, patch_size: 14, temporal_patch_size: 2, merge_size: 2, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5] }));
    expect(readPreprocessorConfig(dir)).toMatchObject({ maxPixels: 12845056, mean: [0.5, 0.5, 0.5] });
    fs.writeFileSync(path.join(dir, 'preprocessor_config.json'), JSON.stringify({ patch_size: 0 }));
    expect(() => readPreprocessorConfig(dir)).toThrow(/preprocessor_config\.json: patch_size: expected a positive integer/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// The reference processor's outputs (python/reference/make_fixtures.py: transformers' slow Qwen2-VL
// image processor, with Pillow's bicubic resize) for three images: 50×70 and 120×100 are resized.
test('pixel values equal the reference processor\'s, resized images included', () => {
  const dir = path.join(__dirname, '../../fixtures/qwen2_vl_tiny');
  const expected = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')) as {
    images: { tensor: string; image_grid_thw: number[]; num_image_tokens: number; resized_height: number; resized_width: number; pixel_values: { sum: number; abs_sum: number; weighted_sum: number }; pixel_values_first_patch: number[] }[];
  };
  const inputs = readSafetensors(path.join(dir, 'inputs.safetensors')).tensors;
  const cfg = readPreprocessorConfig(dir);
  expect(expected.images).toHaveLength(3);
  for (const e of expected.images) {
    const t = inputs.get(e.tensor)!;
    const [h, w] = t.shape;
    const p = preprocessImage({ data: t.bytes, width: w, height: h, channels: 3 }, cfg);
    expect(p.grid).toEqual(e.image_grid_thw);
    expect(p.size).toEqual([e.resized_height, e.resized_width]);
    expect(p.mergedTokens).toBe(e.num_image_tokens);
    let maxErr = 0;
    e.pixel_values_first_patch.forEach((v, i) => (maxErr = Math.max(maxErr, Math.abs(p.pixelValues[i] - v))));
    expect(maxErr).toBeLessThan(1e-6);
    let sum = 0, abs = 0, weighted = 0;
    p.pixelValues.forEach((v, i) => {
      sum += v;
      abs += Math.abs(v);
      weighted += v * ((i % 97) + 1);
    });
    expect(Math.abs(sum - e.pixel_values.sum)).toBeLessThan(1e-3);
    expect(Math.abs(abs - e.pixel_values.abs_sum)).toBeLessThan(1e-3);
    expect(Math.abs(weighted - e.pixel_values.weighted_sum)).toBeLessThan(1e-2);
  }
});
