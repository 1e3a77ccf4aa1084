// Per-episode tool state: the full-resolution original, the view settings and the intensity
// window in force (set by `window`, cleared by `view_original`).
import { checkImage, cropRaw, fullRangeWindow, to8Bit, type Box, type IntensityWindow, type RawImage, type ViewImage } from './image';
import { renderView, type RenderOptions, type ResizeKernel } from './render';

export interface ViewOptions {
  /** Side of the square view the policy sees, in pixels (SPEC §1 image_size S). Default 64. */
  viewSize?: number;
  /** Channels of the views: 1 or 3 (SPEC §1 C). Default 3. */
  viewChannels?: 1 | 3;
  /** Resampling kernel for views; default lanczos3. */
  kernel?: ResizeKernel;
}

/** What a tool gives back: a text line, the views, and the regions of the original it showed. */
export interface ToolOutput {
  text: string;
  images: ViewImage[];
  boxes: Box[];
}

export class ToolSession {
  readonly image: RawImage;
  readonly viewSize: number;
  readonly viewChannels: 1 | 3;
  readonly kernel: ResizeKernel;
  /** Window applied to 16-bit images (and 8-bit grey ones once `window` was called). */
  window: IntensityWindow | undefined;
  private readonly baseWindow: IntensityWindow | undefined;

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
    this.baseWindow = image.bitDepth === 16 ? (image.defaultWindow ?? fullRangeWindow(image)) : image.defaultWindow;
    this.window = undefined;
  }

  /** The window in force: the one set by `window`, else the image's default. */
  currentWindow(): IntensityWindow | undefined {
    return this.window ?? this.baseWindow;
  }

  /** 8-bit pixels of a box of the original (whole image when box is omitted), current window. */
  pixels(box?: Box): { data: Uint8Array; width: number; height: number } {
    const img = box ? cropRaw(this.image, box) : this.image;
    return { data: to8Bit(img, this.currentWindow()), width: img.width, height: img.height };
  }

  /** Renders a box of the original (or all of it) into a view. */
  async view(box?: Box, extra: Partial<RenderOptions> = {}, data?: Uint8Array): Promise<ViewImage> {
    const px = this.pixels(box);
    return renderView(data ?? px.data, px.width, px.height, this.image.channels, {
      viewSize: this.viewSize,
      viewChannels: this.viewChannels,
      kernel: this.kernel,
      ...extra,
    });
  }

  fullBox(): Box {
    return [0, 0, this.image.width, this.image.height];
  }
}
