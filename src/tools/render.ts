// The one sharp pipeline every tool ends in: 8-bit pixels → optional rotate/flip/enhance → resize
// into the square view (letterboxed, black) → the policy's channel count. Runs on libuv's thread
// pool, off the event loop.
//
// sharp resizes with fit 'inside' to the content rectangle letterbox() predicts, and the content is
// then placed on the black view here (bit-identical to sharp's fit 'contain', which embeds before
// CLAHE and sharpen run: those would then see the bars, and CLAHE's window, sized from the
// original, failed on any image wider or taller than 8× the view).
import sharp from 'sharp';
import type { ViewImage } from './image';
import { letterbox } from './letterbox';

export type ResizeKernel = 'nearest' | 'linear' | 'cubic' | 'mitchell' | 'lanczos2' | 'lanczos3';

export interface RenderOptions {
  /** Side of the square view in pixels. */
  viewSize: number;
  /** Channels of the view: 1 (grey, RGB is converted to luma) or 3 (grey is replicated). */
  viewChannels: 1 | 3;
  /** Resampling kernel (sharp); default lanczos3, which low-passes before downsampling. */
  kernel?: ResizeKernel;
  /** Rotate clockwise by this many degrees before resizing. */
  rotate?: 90 | 180 | 270;
  /** Mirror left-right. */
  flop?: boolean;
  /** Mirror top-bottom. */
  flip?: boolean;
  /** Contrast-limited adaptive histogram equalization on the resized content (window 1/8 of its side). */
  clahe?: boolean;
  /** Sharpen the resized content (sigma 1). */
  sharpen?: boolean;
}

export async function renderView(data: Uint8Array, width: number, height: number, channels: 1 | 3, o: RenderOptions): Promise<ViewImage> {
  let p = sharp(data, { raw: { width, height, channels } });
  if (o.rotate) p = p.rotate(o.rotate);
  if (o.flip) p = p.flip();
  if (o.flop) p = p.flop();
  const rotated = o.rotate === 90 || o.rotate === 270;
  const w = rotated ? height : width;
  const h = rotated ? width : height;
  const V = o.viewSize;
  const lb = letterbox(w, h, V);
  if (w !== lb.contentWidth || h !== lb.contentHeight) p = p.resize(V, V, { fit: 'inside', kernel: o.kernel ?? 'lanczos3' });
  // Enhancements work on the content at the view's scale (sharp runs them after the resize).
  const cw = lb.contentWidth;
  const ch = lb.contentHeight;
  if (o.clahe) {
    // Window 1/8 of the content (at least 3 pixels), never larger than the content (libvips refuses).
    const win = (side: number): number => Math.min(side, Math.max(3, Math.round(side / 8)));
    p = p.clahe({ width: win(cw), height: win(ch), maxSlope: 3 });
  }
  if (o.sharpen) p = p.sharpen({ sigma: 1 });
  p = o.viewChannels === 1 ? p.toColourspace('b-w') : p.toColourspace('srgb');
  const { data: out, info } = await p.removeAlpha().raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  if (info.width !== cw || info.height !== ch || info.channels !== o.viewChannels) {
    throw new Error(`render produced ${info.width}x${info.height}x${info.channels}, expected ${cw}x${ch}x${o.viewChannels}`);
  }
  const content = new Uint8Array(out.buffer, out.byteOffset, out.length);
  if (cw === V && ch === V) return { data: content, width: V, height: V, channels: o.viewChannels };
  const C = o.viewChannels;
  const view = new Uint8Array(V * V * C); // black bars
  for (let y = 0; y < ch; y++) view.set(content.subarray(y * cw * C, (y + 1) * cw * C), ((lb.offsetY + y) * V + lb.offsetX) * C);
  return { data: view, width: V, height: V, channels: C };
}

/** Histogram equalization of 8-bit samples, per channel (why JS: sharp has no global equalize). */
export function equalize(data: Uint8Array, channels: number): Uint8Array {
  const out = new Uint8Array(data.length);
  const n = data.length / channels;
  for (let c = 0; c < channels; c++) {
    const hist = new Float64Array(256);
    for (let i = c; i < data.length; i += channels) hist[data[i]]++;
    let cdf = 0;
    let cdfMin = -1;
    const lut = new Uint8Array(256);
    for (let v = 0; v < 256; v++) {
      cdf += hist[v];
      if (cdfMin < 0 && cdf > 0) cdfMin = cdf;
      lut[v] = n > cdfMin ? Math.round(((cdf - cdfMin) / (n - cdfMin)) * 255) : v;
    }
    for (let i = c; i < data.length; i += channels) out[i] = lut[data[i]];
  }
  return out;
}
