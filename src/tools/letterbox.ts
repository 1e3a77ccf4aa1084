// Where an image lands in its square view, and box coordinates mapped both ways between the
// original and a view (docs/environment.md, "Images of any size").
//
// Every view is an image region (the whole original for the global view, the zoom box for
// zoom_in / crop_multi) resized with its aspect kept into the square view and centred on black:
// sharp's fit 'contain'. letterbox() reproduces sharp's arithmetic exactly (ResolveShrink: one
// shrink factor for both axes, never below one pixel per axis; libvips resize: output side =
// round(side / shrink); embed: offset = floor((view - content) / 2)), and render.ts uses it to place
// the resized content, so the rectangle it returns is the rectangle the policy sees.
import { RegionError } from './geometry';
import type { Box } from './image';

export interface Letterbox {
  /** Nominal view pixels per original pixel: min(viewSize / width, viewSize / height). */
  scale: number;
  /** Effective scale on each axis: contentWidth / width and contentHeight / height (what the mappings use). */
  scaleX: number;
  /** See `scaleX`. */
  scaleY: number;
  /** Left and top black margins in view pixels. */
  offsetX: number;
  /** See `offsetX`. */
  offsetY: number;
  /** Size of the image content inside the view (the rest is black bars). */
  contentWidth: number;
  /** See `contentWidth`. */
  contentHeight: number;
}

const checkSide = (name: string, v: number, max = Number.MAX_SAFE_INTEGER): void => {
  if (!Number.isSafeInteger(v) || v < 1 || v > max) throw new RangeError(`Expected positive integer ${name} but received ${v}`);
};

/**
 * Geometry of a width × height image (or region) shown in a viewSize × viewSize view: the content
 * is width·s × height·s rounded (s = min(viewSize/width, viewSize/height); a side never drops
 * below one pixel, so a 4000×30 image is 64×1 at view 64), centred, with black bars on the two
 * sides the aspect leaves free (left/top bar = floor of half the slack).
 */
export function letterbox(width: number, height: number, viewSize: number): Letterbox {
  checkSide('width', width);
  checkSide('height', height);
  checkSide('viewSize', viewSize);
  let contentWidth = viewSize;
  let contentHeight = viewSize;
  if (width !== viewSize || height !== viewSize) {
    // sharp ResolveShrink (fit contain = Canvas::EMBED), then libvips resize's output size.
    const shrink = Math.max(width / viewSize, height / viewSize);
    const hshrink = Math.min(shrink, width);
    const vshrink = Math.min(shrink, height);
    contentWidth = Math.floor(width * (1 / hshrink) + 0.5);
    contentHeight = Math.floor(height * (1 / vshrink) + 0.5);
  }
  return {
    scale: Math.min(viewSize / width, viewSize / height),
    scaleX: contentWidth / width,
    scaleY: contentHeight / height,
    offsetX: Math.floor((viewSize - contentWidth) / 2),
    offsetY: Math.floor((viewSize - contentHeight) / 2),
    contentWidth,
    contentHeight,
  };
}

/** A box [x1, y1, x2, y2) in continuous view pixels (not rounded). */
export type ViewBox = [number, number, number, number];

function shownRegion(width: number, height: number, region: Box | undefined): Box {
  checkSide('width', width);
  checkSide('height', height);
  const r = region ?? ([0, 0, width, height] as Box);
  if (!(r[0] >= 0 && r[1] >= 0 && r[2] <= width && r[3] <= height && r[2] > r[0] && r[3] > r[1]) || !r.every(Number.isInteger)) {
    throw new RangeError(`Expected region inside the ${width}x${height} image but received [${r.join(', ')}]`);
  }
  return r;
}

/**
 * Maps a box of the original (pixels, x2/y2 exclusive) into a view of size viewSize that shows
 * `region` of the width × height original (default: all of it, the global view; a zoom's view
 * shows the box the tool returned). The result is in continuous view pixels (x' = offsetX +
 * (x − region.x1) · scaleX), not clipped: parts of the box outside the region fall outside the content.
 */
export function originalToView(box: readonly number[], width: number, height: number, viewSize: number, region?: Box): ViewBox {
  const r = shownRegion(width, height, region);
  const lb = letterbox(r[2] - r[0], r[3] - r[1], viewSize);
  // (x · contentWidth) / regionWidth rather than x · scaleX: exact whenever the result is an integer.
  const rw = r[2] - r[0];
  const rh = r[3] - r[1];
  return [
    lb.offsetX + ((box[0] - r[0]) * lb.contentWidth) / rw,
    lb.offsetY + ((box[1] - r[1]) * lb.contentHeight) / rh,
    lb.offsetX + ((box[2] - r[0]) * lb.contentWidth) / rw,
    lb.offsetY + ((box[3] - r[1]) * lb.contentHeight) / rh,
  ];
}

/**
 * The inverse: a box in view pixels (e.g. where the policy saw something in the global view) →
 * the integer box of original pixels it covers (x1, y1 rounded down, x2, y2 up, to within 1e-9 so
 * that originalToView's output maps back exactly), clipped to the region shown. A box that lies
 * wholly in the black bars is a RegionError.
 */
export function viewToOriginal(box: readonly number[], width: number, height: number, viewSize: number, region?: Box): Box {
  const r = shownRegion(width, height, region);
  const lb = letterbox(r[2] - r[0], r[3] - r[1], viewSize);
  if (box.length !== 4 || !box.every(Number.isFinite)) throw new RegionError(`Expected a view box of 4 finite numbers but received [${box.join(', ')}]`);
  const eps = 1e-9;
  const rw = r[2] - r[0];
  const rh = r[3] - r[1];
  const x1 = Math.floor(r[0] + ((box[0] - lb.offsetX) * rw) / lb.contentWidth + eps);
  const y1 = Math.floor(r[1] + ((box[1] - lb.offsetY) * rh) / lb.contentHeight + eps);
  const x2 = Math.ceil(r[0] + ((box[2] - lb.offsetX) * rw) / lb.contentWidth - eps);
  const y2 = Math.ceil(r[1] + ((box[3] - lb.offsetY) * rh) / lb.contentHeight - eps);
  const out: Box = [Math.max(x1, r[0]), Math.max(y1, r[1]), Math.min(x2, r[2]), Math.min(y2, r[3])];
  if (out[2] <= out[0] || out[3] <= out[1]) {
    throw new RegionError(`view box [${box.join(', ')}] shows no part of the image (content is [${lb.offsetX}, ${lb.offsetY}, ${lb.offsetX + lb.contentWidth}, ${lb.offsetY + lb.contentHeight}] of the ${viewSize}x${viewSize} view)`);
  }
  return out;
}
