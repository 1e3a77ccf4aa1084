// The one sharp pipeline every tool ends in: 8-bit pixels → optional rotate/flip/enhance → resize
// into the square view (letterboxed, black) → the policy's channel count. Runs on libuv's thread
// pool, off the event loop.
import sharp from 'sharp';
import type { ViewImage } from './image';

export type ResizeKernel = 'nearest' | 'linear' | 'cubic' | 'mitchell' | 'lanczos2' | 'lanczos3';

export interface RenderOptions {
  /** Side of the square view in pixels. */
  viewSize: number;
  /** Channels of the view: 1 (grey, RGB is converted to luma) or 3 (grey is replicated). */
  viewChannels: 1 | 3;
  /** Resampling kernel (sharp); default lanczos3, which low-passes before downsampling. */
  kernel?: ResizeKernel;
  rotate?: 90 | 180 | 270;
  /** Mirror left-right. */
  flop?: boolean;
  /** Mirror top-bottom. */
  flip?: boolean;
  clahe?: boolean;
  sharpen?: boolean;
}

export async function renderView(data: Uint8Array, width: number, height: number, channels: 1 | 3, o: RenderOptions): Promise<ViewImage> {
  let p = sharp(data, { raw: { width, height, channels } });
  if (o.clahe) p = p.clahe({ width: Math.max(3, Math.round(width / 8)), height: Math.max(3, Math.round(height / 8)), maxSlope: 3 });
  if (o.sharpen) p = p.sharpen({ sigma: 1 });
  if (o.rotate) p = p.rotate(o.rotate);
  if (o.flip) p = p.flip();
  if (o.flop) p = p.flop();
  const rotated = o.rotate === 90 || o.rotate === 270;
  const w = rotated ? height : width;
  const h = rotated ? width : height;
  if (w !== o.viewSize || h !== o.viewSize) {
    p = p.resize(o.viewSize, o.viewSize, { fit: 'contain', background: { r: 0, g: 0, b: 0 }, kernel: o.kernel ?? 'lanczos3' });
  }
  p = o.viewChannels === 1 ? p.toColourspace('b-w') : p.toColourspace('srgb');
  const { data: out, info } = await p.removeAlpha().raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  if (info.width !== o.viewSize || info.height !== o.viewSize || info.channels !== o.viewChannels) {
    throw new Error(`render produced ${info.width}x${info.height}x${info.channels}, expected ${o.viewSize}x${o.viewSize}x${o.viewChannels}`);
  }
  return { data: new Uint8Array(out.buffer, out.byteOffset, out.length), width: info.width, height: info.height, channels: o.viewChannels };
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
