// Raw pixel images shared by tools, generator and loaders, and the few pixel helpers they need.

/** A raw image: row-major, channels interleaved. 16-bit images are greyscale (CT, MRI, X-ray). */
export interface RawImage {
  /** Uint8Array for bitDepth 8, Uint16Array for bitDepth 16. */
  data: Uint8Array | Uint16Array;
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** 1 (grey) or 3 (RGB). */
  channels: 1 | 3;
  /** Bits per sample: 8 (Uint8Array data) or 16 (Uint16Array data). */
  bitDepth: 8 | 16;
  /** Display window used when no `window` call is in force (e.g. DICOM WindowCenter/Width). */
  defaultWindow?: IntensityWindow;
}

/** An 8-bit view as the policy sees it (pixels scaled x/255*2-1 by the policy, SPEC §1). */
export interface ViewImage {
  /** 8-bit samples, row-major, channels interleaved (width × height × channels bytes). */
  data: Uint8Array;
  /** Width in pixels (the view size). */
  width: number;
  /** Height in pixels (the view size). */
  height: number;
  /** 1 (grey) or 3 (RGB). */
  channels: 1 | 3;
}

/** Integer pixel box [x1, y1, x2, y2), x2/y2 exclusive, inside the image. */
export type Box = [number, number, number, number];

/** Intensity window in the image's stored units. */
export interface IntensityWindow {
  /** Stored value at the middle of the window. */
  center: number;
  /** Width of the window: stored values center ± width/2 map to 0..255; those outside clip. */
  width: number;
}

/** Typed-array kind by tag, not instanceof: arrays from worker threads or vm contexts have another realm. */
export const isU8 = (a: unknown): a is Uint8Array => Object.prototype.toString.call(a) === '[object Uint8Array]';
export const isU16 = (a: unknown): a is Uint16Array => Object.prototype.toString.call(a) === '[object Uint16Array]';

export function checkImage(img: RawImage): void {
  const { width, height, channels, bitDepth, data } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`Expected positive integer image size but received ${width}x${height}`);
  }
  if (channels !== 1 && channels !== 3) throw new RangeError(`Expected 1 or 3 channels but received ${channels}`);
  if (bitDepth === 16 && !isU16(data)) throw new TypeError('Expected Uint16Array data for a 16-bit image');
  if (bitDepth === 8 && !isU8(data)) throw new TypeError('Expected Uint8Array data for an 8-bit image');
  if (data.length !== width * height * channels) {
    throw new RangeError(`Expected ${width * height * channels} samples for ${width}x${height}x${channels} but received ${data.length}`);
  }
}

/** Copies the box [x1,y1,x2,y2) out of img (same depth and channels). */
export function cropRaw(img: RawImage, box: Box): RawImage {
  const [x1, y1, x2, y2] = box;
  const w = x2 - x1;
  const h = y2 - y1;
  const c = img.channels;
  const out = img.bitDepth === 16 ? new Uint16Array(w * h * c) : new Uint8Array(w * h * c);
  for (let y = 0; y < h; y++) {
    const src = ((y1 + y) * img.width + x1) * c;
    out.set(img.data.subarray(src, src + w * c), y * w * c);
  }
  return { data: out, width: w, height: h, channels: c, bitDepth: img.bitDepth };
}

/** Lowest and highest stored sample of the image. */
export function valueRange(img: RawImage): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  const d = img.data;
  for (let i = 0; i < d.length; i++) {
    const v = d[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

/**
 * The window that maps the image's full stored range onto 0..255 under to8Bit: min → 0 and
 * max → 255 exactly (a 16-bit mask of 0 and 1 shows black and white); a constant image is black.
 */
export function fullRangeWindow(img: RawImage, range: [number, number] = valueRange(img)): IntensityWindow {
  const [lo, hi] = range;
  return hi > lo ? { center: (lo + hi) / 2, width: hi - lo } : { center: lo + 0.5, width: 1 };
}

// Bound once: a global lookup per sample (Math) costs ~150 ns inside a vm context (jest), 30× the loop.
const round = Math.round;

/**
 * To 8 bits: with a window, out = clamp(round((v - (center - width/2)) / width * 255), 0, 255);
 * without one, 8-bit data is copied as is and 16-bit data is mapped through its full range.
 * Images with more samples than stored levels go through a lookup table of the same formula (one
 * entry per level: 65,536 for 16 bits), which is the same result for a fraction of the work.
 */
export function to8Bit(img: RawImage, window?: IntensityWindow): Uint8Array {
  if (!window && img.bitDepth === 8) return img.data as Uint8Array;
  const w = window ?? fullRangeWindow(img);
  const lo = w.center - w.width / 2;
  const k = 255 / w.width;
  const d = img.data;
  const out = new Uint8Array(d.length);
  const levels = img.bitDepth === 16 ? 65536 : 256;
  if (d.length > 2 * levels) {
    const lut = new Uint8Array(levels);
    for (let v = 0; v < levels; v++) {
      const o = round((v - lo) * k);
      lut[v] = o < 0 ? 0 : o > 255 ? 255 : o;
    }
    for (let i = 0; i < d.length; i++) out[i] = lut[d[i]];
    return out;
  }
  for (let i = 0; i < d.length; i++) {
    const v = round((d[i] - lo) * k);
    out[i] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
  return out;
}
