// The Qwen2-VL image processor (transformers models/qwen2_vl/image_processing_qwen2_vl.py, the slow
// one): smart_resize to multiples of patch × merge within [min_pixels, max_pixels], RGB, Pillow's
// bicubic resize (./resample.ts, bit for bit),
// rescale 1/255 and normalize with the CLIP mean/std, the image repeated to `temporal_patch_size`
// frames, and the patches flattened in the processor's order (merge windows outermost, so that the
// 2×2 patches the merger joins are adjacent rows), with image_grid_thw. Qwen2.5-VL uses the same one.
import * as fs from 'fs';
import * as path from 'path';
import { resizeBicubic } from './resample';

export interface PreprocessorConfig {
  /** smart_resize keeps an image at least this many pixels (`min_pixels`). */
  minPixels: number;
  /** … and at most this many (`max_pixels`). */
  maxPixels: number;
  /** Patch side in pixels (`patch_size`). */
  patch: number;
  /** Frames per temporal patch (`temporal_patch_size`: a still image is repeated this many times). */
  temporalPatch: number;
  /** Patches merged per side into one token (`merge_size`): sides are resized to multiples of patch × merge. */
  merge: number;
  /** Per-channel mean subtracted after rescaling to [0, 1] (`image_mean`). */
  mean: [number, number, number];
  /** Per-channel standard deviation divided by (`image_std`). */
  std: [number, number, number];
}

/** OPENAI_CLIP_MEAN / OPENAI_CLIP_STD, the processor's defaults. */
export const DEFAULT_PREPROCESSOR: PreprocessorConfig = {
  minPixels: 56 * 56,
  maxPixels: 28 * 28 * 1280,
  patch: 14,
  temporalPatch: 2,
  merge: 2,
  mean: [0.48145466, 0.4578275, 0.40821073],
  std: [0.26862954, 0.26130258, 0.27577711],
};

/** Python's round(): half to even (round_by_factor relies on it). */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** smart_resize: [height, width] divisible by `factor`, pixels in [minPixels, maxPixels], aspect kept as closely as possible. */
export function smartResize(height: number, width: number, factor: number, minPixels: number, maxPixels: number): [number, number] {
  if (height < 10 || width < 10) throw new RangeError(`image of ${width}×${height}: both sides must be at least 10 pixels`);
  if (Math.max(height, width) / Math.min(height, width) > 200) throw new RangeError(`image of ${width}×${height}: aspect ratio above 200`);
  let h = roundHalfEven(height / factor) * factor;
  let w = roundHalfEven(width / factor) * factor;
  if (h * w > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels);
    h = Math.floor(height / beta / factor) * factor;
    w = Math.floor(width / beta / factor) * factor;
  } else if (h * w < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    h = Math.ceil((height * beta) / factor) * factor;
    w = Math.ceil((width * beta) / factor) * factor;
  }
  return [h, w];
}

export interface PixelInput {
  /** HWC uint8. */
  data: Uint8Array;
  width: number;
  height: number;
  channels: 1 | 3;
}

export interface Preprocessed {
  /** [gridT·gridH·gridW, C·T·P·P] rows in the processor's order. */
  pixelValues: Float32Array;
  grid: [number, number, number];
  /** Tokens the merger makes of it: the number of <|image_pad|> tokens the image takes. */
  mergedTokens: number;
  /** The resized size [height, width]. */
  size: [number, number];
}

/** The <|image_pad|> tokens an image of this size takes (its merged patches after smart_resize), without resizing it. */
export function mergedTokenCount(height: number, width: number, c: PreprocessorConfig = DEFAULT_PREPROCESSOR): number {
  const [rh, rw] = smartResize(height, width, c.patch * c.merge, c.minPixels, c.maxPixels);
  return (rh / c.patch) * (rw / c.patch) / (c.merge * c.merge);
}

/** Preprocesses one image (RGB after conversion; a grey image is replicated, as PIL's convert('RGB')). */
export function preprocessImage(img: PixelInput, c: PreprocessorConfig = DEFAULT_PREPROCESSOR): Preprocessed {
  const factor = c.patch * c.merge;
  const [rh, rw] = smartResize(img.height, img.width, factor, c.minPixels, c.maxPixels);
  const n = img.width * img.height;
  if (img.data.length !== n * img.channels) throw new RangeError(`Expected ${n * img.channels} bytes for a ${img.width}×${img.height}×${img.channels} image but received ${img.data.length}`);
  let src = img.data;
  if (img.channels === 1) {
    src = new Uint8Array(n * 3);
    for (let i = 0; i < n; i++) src[3 * i] = src[3 * i + 1] = src[3 * i + 2] = img.data[i];
  }
  const rgb = resizeBicubic(src, img.width, img.height, 3, rw, rh);
  const C = 3;
  const T = c.temporalPatch;
  const P = c.patch;
  const M = c.merge;
  const gh = rh / P;
  const gw = rw / P;
  const rowLen = C * T * P * P;
  const mean = c.mean.map(Math.fround);
  const std = c.std.map(Math.fround);
  const out = new Float32Array(gh * gw * rowLen);
  // Row order: (merge block row, merge block col, row in block, col in block); within a row:
  // (channel, frame, y in patch, x in patch) — the processor's permute(0, 3, 6, 4, 7, 2, 1, 5, 8).
  let row = 0;
  for (let bh = 0; bh < gh / M; bh++) {
    for (let bw = 0; bw < gw / M; bw++) {
      for (let mh = 0; mh < M; mh++) {
        for (let mw = 0; mw < M; mw++) {
          const y0 = (bh * M + mh) * P;
          const x0 = (bw * M + mw) * P;
          let k = row * rowLen;
          for (let ch = 0; ch < C; ch++) {
            for (let t = 0; t < T; t++) {
              for (let y = 0; y < P; y++) {
                for (let x = 0; x < P; x++) {
                  // as transformers: rescale in float64 then float32; normalize in float32
                  const v = Math.fround(rgb[((y0 + y) * rw + x0 + x) * C + ch] * (1 / 255));
                  out[k++] = Math.fround(Math.fround(v - mean[ch]) / std[ch]);
                }
              }
            }
          }
          row++;
        }
      }
    }
  }
  return { pixelValues: out, grid: [1, gh, gw], mergedTokens: (gh * gw) / (M * M), size: [rh, rw] };
}

/** `<dir>/preprocessor_config.json` over the defaults (absent file: the defaults). */
export function readPreprocessorConfig(dir: string): PreprocessorConfig {
  const file = path.join(dir, 'preprocessor_config.json');
  if (!fs.existsSync(file)) return { ...DEFAULT_PREPROCESSOR };
  let o: Record<string, unknown>;
  try {
    if (fs.statSync(file).size > 1 << 20) throw new Error('larger than 1 MB');
    o = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new RangeError(`${file}: cannot read (${(err as Error).message})`);
  }
  const size = (o.size ?? {}) as Record<string, unknown>;
  const int = (v: unknown, key: string, dflt: number): number => {
    const x = v ?? dflt;
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 1) throw new RangeError(`${file}: ${key}: expected a positive integer but found ${JSON.stringify(x)}`);
    return x;
  };
  const triple = (v: unknown, key: string, dflt: [number, number, number]): [number, number, number] => {
    const x = v ?? dflt;
    if (!Array.isArray(x) || x.length !== 3 || !x.every((n) => typeof n === 'number' && Number.isFinite(n))) throw new RangeError(`${file}: ${key}: expected three numbers`);
    return x as [number, number, number];
  };
  const c: PreprocessorConfig = {
    minPixels: int(o.min_pixels ?? size.shortest_edge ?? size.min_pixels, 'min_pixels', DEFAULT_PREPROCESSOR.minPixels),
    maxPixels: int(o.max_pixels ?? size.longest_edge ?? size.max_pixels, 'max_pixels', DEFAULT_PREPROCESSOR.maxPixels),
    patch: int(o.patch_size, 'patch_size', 14),
    temporalPatch: int(o.temporal_patch_size, 'temporal_patch_size', 2),
    merge: int(o.merge_size, 'merge_size', 2),
    mean: triple(o.image_mean, 'image_mean', DEFAULT_PREPROCESSOR.mean),
    std: triple(o.image_std, 'image_std', DEFAULT_PREPROCESSOR.std),
  };
  if (c.std.some((s) => s <= 0)) throw new RangeError(`${file}: image_std: expected positive numbers`);
  if (c.minPixels > c.maxPixels) throw new RangeError(`${file}: min_pixels ${c.minPixels} above max_pixels ${c.maxPixels}`);
  return c;
}
