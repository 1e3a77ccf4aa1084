// Regions the policy points at: pixel boxes or cells of a 4×4 grid, resolved to integer boxes
// inside the image. Rules (documented in docs/environment.md):
// - bbox is [x1, y1, x2, y2] in original pixels; non-integers are rounded, x2/y2 are exclusive.
// - A box partly outside the image is clamped to it; one with no overlap, or with x2 <= x1 or
//   y2 <= y1, is an error naming the problem.
// - cell "B3" = column B (2nd from the left), row 3 (3rd from the top); span 2 takes the 2×2 block
//   whose top-left cell it is (so D or 4 with span 2 is an error).
// - zoom_in's scale (default 1) grows the box about its centre before clamping (context); a
//   shrink never leaves less than the one pixel under the centre.
// - Cells: see cellBox (edges rounded; they tile any image, also one of odd or tiny size).
import type { Box } from './image';

export const GRID = 4;
export const COLUMNS = 'ABCD';

export type RegionSpec = { bbox: number[]; scale?: number } | { cell: string; span?: 1 | 2; scale?: number };

export class RegionError extends Error {}

/** Edge k (0..GRID) of the grid along a side of n pixels: round(k·n/4); edges 0 and 4 are 0 and n. */
export function gridEdge(k: number, n: number): number {
  return Math.round((k * n) / GRID);
}

/**
 * Cell box for column c, row r (0-based), span cells, in an image w × h. Edges are rounded
 * (gridEdge), so on any side of 4 pixels or more the 16 cells tile the image exactly, each at least
 * one pixel wide, with no gap or overlap. On a side under 4 pixels some cells would be empty: such
 * a cell is the one pixel under its centre (cells then share pixels, none is empty).
 */
export function cellBox(col: number, row: number, span: number, w: number, h: number): Box {
  const side = (k: number, n: number): [number, number] => {
    const a = gridEdge(k, n);
    const b = gridEdge(k + span, n);
    if (b > a) return [a, b];
    const p = Math.min(n - 1, Math.floor(((k + span / 2) * n) / GRID));
    return [p, p + 1];
  };
  const [x1, x2] = side(col, w);
  const [y1, y2] = side(row, h);
  return [x1, y1, x2, y2];
}

/** Parses "B3" (case-insensitive) into 0-based column and row. */
export function parseCell(cell: string): { col: number; row: number } {
  const m = /^([A-Da-d])([1-4])$/.exec(cell.trim());
  if (!m) throw new RegionError(`Expected cell like "B3" (columns A-D, rows 1-4) for cell but received ${JSON.stringify(cell.slice(0, 40))}`);
  return { col: COLUMNS.indexOf(m[1].toUpperCase()), row: Number(m[2]) - 1 };
}

/** The grid cell (name) whose area contains the centre of box (cell edges as cellBox draws them). */
export function cellOf(box: Box, w: number, h: number): string {
  const index = (c: number, n: number): number => {
    let k = 0;
    while (k < GRID - 1 && c >= gridEdge(k + 1, n)) k++;
    return k;
  };
  const col = index((box[0] + box[2]) / 2, w);
  const row = index((box[1] + box[3]) / 2, h);
  return `${COLUMNS[col]}${row + 1}`;
}

/** Resolves a region to an integer box inside a w × h image, or throws RegionError. */
export function resolveRegion(spec: RegionSpec, w: number, h: number, name = 'bbox'): Box {
  let box: Box;
  if ('cell' in spec) {
    const { col, row } = parseCell(spec.cell);
    const span = spec.span ?? 1;
    if (col + span > GRID || row + span > GRID) {
      throw new RegionError(`cell ${spec.cell} with span ${span} runs past the 4×4 grid`);
    }
    box = cellBox(col, row, span, w, h);
  } else {
    const b = spec.bbox.map((v) => Math.round(v)) as Box;
    if (b[2] <= b[0] || b[3] <= b[1]) {
      throw new RegionError(`${name} must have x2 > x1 and y2 > y1 but received [${b.join(', ')}]`);
    }
    box = b;
  }
  const scale = spec.scale ?? 1;
  if (scale !== 1) {
    const cx = (box[0] + box[2]) / 2;
    const cy = (box[1] + box[3]) / 2;
    const hw = ((box[2] - box[0]) * scale) / 2;
    const hh = ((box[3] - box[1]) * scale) / 2;
    box = [Math.round(cx - hw), Math.round(cy - hh), Math.round(cx + hw), Math.round(cy + hh)];
    // A shrink below one pixel keeps the pixel under the centre (not an empty box).
    if (box[2] <= box[0]) [box[0], box[2]] = [Math.floor(cx), Math.floor(cx) + 1];
    if (box[3] <= box[1]) [box[1], box[3]] = [Math.floor(cy), Math.floor(cy) + 1];
  }
  const clamped: Box = [clamp(box[0], 0, w), clamp(box[1], 0, h), clamp(box[2], 0, w), clamp(box[3], 0, h)];
  if (clamped[2] <= clamped[0] || clamped[3] <= clamped[1]) {
    throw new RegionError(`${name} [${box.join(', ')}] lies outside the ${w}x${h} image`);
  }
  return clamped;
}

const clamp = (v: number, lo: number, hi: number): number => (v < lo ? lo : v > hi ? hi : v);

/** Intersection over union of two boxes (0 when either is empty). */
export function iou(a: Box, b: Box): number {
  const ix = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const iy = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = ix * iy;
  const area = (q: Box): number => Math.max(0, q[2] - q[0]) * Math.max(0, q[3] - q[1]);
  const union = area(a) + area(b) - inter;
  return union > 0 ? inter / union : 0;
}
