// A float canvas the synthetic looks paint on before quantization to 8 or 16 bits.
import type { Stream } from '../rng';

export interface Canvas {
  w: number;
  h: number;
  ch: 1 | 3;
  /** Interleaved samples in stored units (0–255 for 8-bit looks, e.g. HU+1024 for CT). */
  px: Float32Array;
}

export function canvas(w: number, h: number, ch: 1 | 3, fill: number | number[] = 0): Canvas {
  const px = new Float32Array(w * h * ch);
  const f = typeof fill === 'number' ? Array(ch).fill(fill) : fill;
  if (ch === 1) px.fill(f[0]);
  else {
    const [r, g, b] = f;
    for (let i = 0; i < px.length; i += 3) {
      px[i] = r;
      px[i + 1] = g;
      px[i + 2] = b;
    }
  }
  return { w, h, ch, px };
}

/** Smooth random field in [-1, 1]: a g × g grid of random values, bilinearly interpolated. */
export function valueNoise(rng: Stream, w: number, h: number, g: number): Float32Array {
  const grid = new Float32Array((g + 1) * (g + 1));
  for (let i = 0; i < grid.length; i++) grid[i] = rng.uniform(-1, 1);
  const out = new Float32Array(w * h);
  for (let y = 0; y < h; y++) {
    const fy = (y / h) * g;
    const y0 = Math.floor(fy);
    const ty = fy - y0;
    for (let x = 0; x < w; x++) {
      const fx = (x / w) * g;
      const x0 = Math.floor(fx);
      const tx = fx - x0;
      const a = grid[y0 * (g + 1) + x0];
      const b = grid[y0 * (g + 1) + x0 + 1];
      const c = grid[(y0 + 1) * (g + 1) + x0];
      const d = grid[(y0 + 1) * (g + 1) + x0 + 1];
      out[y * w + x] = (a * (1 - tx) + b * tx) * (1 - ty) + (c * (1 - tx) + d * tx) * ty;
    }
  }
  return out;
}

/** Adds v (per channel: v * tint[c]) where the ellipse (cx, cy, rx, ry) covers a pixel centre. */
export function addEllipse(cv: Canvas, cx: number, cy: number, rx: number, ry: number, v: number, tint: number[] = [1, 1, 1]): void {
  const x0 = Math.max(0, Math.floor(cx - rx));
  const x1 = Math.min(cv.w - 1, Math.ceil(cx + rx));
  const y0 = Math.max(0, Math.floor(cy - ry));
  const y1 = Math.min(cv.h - 1, Math.ceil(cy + ry));
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const dx = (x + 0.5 - cx) / rx;
      const dy = (y + 0.5 - cy) / ry;
      if (dx * dx + dy * dy > 1) continue;
      const i = (y * cv.w + x) * cv.ch;
      for (let c = 0; c < cv.ch; c++) cv.px[i + c] += v * tint[c];
    }
  }
}

/** Adds amp * field[i] * tint over the whole canvas. */
export function addField(cv: Canvas, field: Float32Array, amp: number, tint: number[] = [1, 1, 1]): void {
  for (let i = 0; i < cv.w * cv.h; i++) for (let c = 0; c < cv.ch; c++) cv.px[i * cv.ch + c] += amp * field[i] * tint[c];
}

/**
 * Rounds (half up) and clamps to the stored range, in place on the canvas, then converts natively
 * (one monomorphic loop: a shared loop over Uint8Array | Uint16Array outputs ran 10x slower).
 */
export function quantize(cv: Canvas, bitDepth: 8 | 16, max = bitDepth === 8 ? 255 : 4095): Uint8Array | Uint16Array {
  const px = cv.px;
  for (let i = 0; i < px.length; i++) {
    const v = Math.floor(px[i] + 0.5);
    px[i] = v < 0 ? 0 : v > max ? max : v;
  }
  return bitDepth === 8 ? new Uint8Array(px) : new Uint16Array(px);
}

/** Adds v * tint to a disc of radius r around (cx, cy): a cheap brush for thin curves. */
export function stamp(cv: Canvas, cx: number, cy: number, r: number, v: number, tint: number[] = [1, 1, 1]): void {
  const x0 = Math.max(0, Math.round(cx - r));
  const x1 = Math.min(cv.w - 1, Math.round(cx + r) - 1);
  const y0 = Math.max(0, Math.round(cy - r));
  const y1 = Math.min(cv.h - 1, Math.round(cy + r) - 1);
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const i = (y * cv.w + x) * cv.ch;
      for (let c = 0; c < cv.ch; c++) cv.px[i + c] += v * tint[c];
    }
  }
}
