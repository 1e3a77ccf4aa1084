// Per-episode tool state: the full-resolution original, the view settings and the intensity
// window in force (set by `window`, cleared by `view_original`).
import { checkImage, cropRaw, fullRangeWindow, to8Bit, valueRange, type Box, type IntensityWindow, type RawImage, type ViewImage } from './image';
import { renderView, type RenderOptions, type ResizeKernel } from './render';

/** Where rendered views may be cached: any get/set map (the env passes an LRU). */
export interface ViewCache {
  get(key: string): ViewImage | undefined;
  set(key: string, v: ViewImage): void;
}

export interface ViewOptions {
  /** Side of the square view the policy sees, in pixels (SPEC §1 image_size S). Default 64. */
  viewSize?: number;
  /** Channels of the views: 1 or 3 (SPEC §1 C). Default 3. */
  viewChannels?: 1 | 3;
  /** Resampling kernel for views; default lanczos3. */
  kernel?: ResizeKernel;
  /** View cache shared across episodes, and the key that identifies this image's pixels in it. */
  cache?: ViewCache;
  /** See `cache`. */
  cacheKey?: string;
}

// The stored range of an image is computed once per image object.
const RANGE = new WeakMap<RawImage, [number, number]>();
const rangeOf = (img: RawImage): [number, number] => {
  let r = RANGE.get(img);
  if (!r) RANGE.set(img, (r = valueRange(img)));
  return r;
};

/** What a tool gives back: a text line, the views, and the regions of the original it showed. */
export interface ToolOutput {
  /** The line the tool answers with. */
  text: string;
  /** The views it produced. */
  images: ViewImage[];
  /** Regions of the original shown (for the IoU reward). */
  boxes: Box[];
}

export class ToolSession {
  /** The original image of the episode. */
  readonly image: RawImage;
  /** Side of the square views in pixels (default 64). */
  readonly viewSize: number;
  /** Channels of the views (default 3). */
  readonly viewChannels: 1 | 3;
  /** Resampling kernel of the views (default lanczos3). */
  readonly kernel: ResizeKernel;
  /** Window applied to 16-bit images (and 8-bit grey ones once `window` was called). */
  window: IntensityWindow | undefined;
  private readonly baseWindow: IntensityWindow | undefined;
  private readonly cache: ViewCache | undefined;
  private readonly cacheKey: string | undefined;
  // 8-bit copies of the whole image, one per window used in this episode.
  private readonly eight = new Map<string, Uint8Array>();

  constructor(image: RawImage, opts: ViewOptions = {}) {
    checkImage(image);
    this.image = image;
    this.viewSize = opts.viewSize ?? 64;
    this.viewChannels = opts.viewChannels ?? 3;
    this.kernel = opts.kernel ?? 'lanczos3';
    if (!Number.isInteger(this.viewSize) || this.viewSize < 1 || this.viewSize > 4096) {
      throw new RangeError(`Expected integer viewSize in [1, 4096] but received ${this.viewSize}`);
    }
    // One window for the whole image, so that crops keep the global view's grey levels.
    this.baseWindow = image.bitDepth === 16 ? (image.defaultWindow ?? fullRangeWindow(image, rangeOf(image))) : image.defaultWindow;
    this.window = undefined;
    this.cache = opts.cacheKey !== undefined ? opts.cache : undefined;
    this.cacheKey = opts.cacheKey;
  }

  /** Lowest and highest stored value of the image (computed once per image). */
  storedRange(): [number, number] {
    const [lo, hi] = rangeOf(this.image);
    return [lo, hi];
  }

  /** The window in force: the one set by `window`, else the image's default. */
  currentWindow(): IntensityWindow | undefined {
    return this.window ?? this.baseWindow;
  }

  /** 8-bit pixels of a box of the original (whole image when box is omitted), current window. */
  pixels(box?: Box): { data: Uint8Array; width: number; height: number } {
    const w = this.currentWindow();
    const key = w ? `${w.center},${w.width}` : '';
    let full = this.eight.get(key);
    const { width, height, channels } = this.image;
    // A zoom before any whole-image view at this window windows only its box (the same pixels as a
    // crop of the windowed image: to8Bit is per sample), not all of a large original.
    if (!full && box) {
      const c = cropRaw(this.image, box);
      return { data: to8Bit(c, w), width: c.width, height: c.height };
    }
    if (!full) this.eight.set(key, (full = to8Bit(this.image, w)));
    if (!box) return { data: full, width, height };
    const c = cropRaw({ data: full, width, height, channels, bitDepth: 8 }, box);
    return { data: c.data as Uint8Array, width: c.width, height: c.height };
  }

  /** Renders a box of the original (or all of it) into a view; `data` computes replacement pixels (cached under `tag` when given). */
  async view(box?: Box, extra: Partial<RenderOptions> = {}, data?: () => Uint8Array, tag = ''): Promise<ViewImage> {
    const w = this.currentWindow();
    const key = this.cache && (data === undefined || tag)
      ? `${this.cacheKey}|${this.viewSize}x${this.viewChannels}|${this.kernel}|${w ? `${w.center},${w.width}` : '-'}|${box ? box.join(',') : 'all'}|${JSON.stringify(extra)}|${tag}`
      : undefined;
    const hit = key !== undefined ? this.cache!.get(key) : undefined;
    // Copies, so that a caller who writes into a view cannot corrupt the cache.
    if (hit) return { ...hit, data: hit.data.slice() };
    const px = data ? { data: data(), ...(box ? { width: box[2] - box[0], height: box[3] - box[1] } : { width: this.image.width, height: this.image.height }) } : this.pixels(box);
    const v = await renderView(px.data, px.width, px.height, this.image.channels, {
      viewSize: this.viewSize,
      viewChannels: this.viewChannels,
      kernel: this.kernel,
      ...extra,
    });
    if (key !== undefined) this.cache!.set(key, { ...v, data: v.data.slice() });
    return v;
  }

  fullBox(): Box {
    return [0, 0, this.image.width, this.image.height];
  }
}
