// Pillow's BICUBIC resize of 8-bit images (what transformers' slow Qwen2-VL image processor runs):
// separable, the horizontal pass first, each pass rounding to uint8; the cubic kernel (a = -0.5)
// widened by the scale when reducing (antialiasing); weights normalized, then fixed point with 22
// fractional bits, as Pillow's Resample.c does. Our own code, checked bit for bit against the
// reference processor's fixtures (python/reference).

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 2 ** PRECISION_BITS;

function cubic(x: number): number {
  const a = -0.5;
  x = Math.abs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/** Per output index: the first input index, and the fixed-point weights of the inputs from there. */
function coefficients(inSize: number, outSize: number): { start: number; weights: Int32Array }[] {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 2 * filterScale;
  const out: { start: number; weights: Int32Array }[] = [];
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    const w = Array.from({ length: xmax }, (_, x) => cubic((x + xmin - center + 0.5) / filterScale));
    const sum = w.reduce((a, b) => a + b, 0);
    const weights = new Int32Array(xmax);
    w.forEach((v, x) => {
      const n = sum !== 0 ? v / sum : v;
      weights[x] = n < 0 ? Math.trunc(-0.5 + n * ONE) : Math.trunc(0.5 + n * ONE);
    });
    out.push({ start: xmin, weights });
  }
  return out;
}

/** One pass along x (horizontal) or y of an HWC uint8 image with `c` channels. */
function pass(src: Uint8Array, w: number, h: number, c: number, outSize: number, horizontal: boolean): Uint8Array {
  const coeffs = coefficients(horizontal ? w : h, outSize);
  const ow = horizontal ? outSize : w;
  const oh = horizontal ? h : outSize;
  const out = new Uint8Array(ow * oh * c);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      const { start, weights } = coeffs[horizontal ? x : y];
      for (let ch = 0; ch < c; ch++) {
        let acc = ONE / 2;
        for (let k = 0; k < weights.length; k++) {
          const sx = horizontal ? start + k : x;
          const sy = horizontal ? y : start + k;
          acc += src[(sy * w + sx) * c + ch] * weights[k];
        }
        out[(y * ow + x) * c + ch] = acc >= 256 * ONE ? 255 : acc <= 0 ? 0 : Math.floor(acc / ONE);
      }
    }
  }
  return out;
}

/** Pillow's Image.resize((width, height), BICUBIC) of an HWC uint8 image; the same size is a copy. */
export function resizeBicubic(src: Uint8Array, width: number, height: number, channels: number, outWidth: number, outHeight: number): Uint8Array {
  let img = src;
  let w = width;
  if (outWidth !== width) {
    img = pass(img, w, height, channels, outWidth, true);
    w = outWidth;
  }
  if (outHeight !== height) img = pass(img, w, height, channels, outHeight, false);
  return img === src ? src.slice() : img;
}
