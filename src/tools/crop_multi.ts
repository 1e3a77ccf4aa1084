// crop_multi: up to four regions in one call, one view each (rendered concurrently).
import { resolveRegion } from './geometry';
import type { ToolArgs } from './schemas';
import type { ToolOutput, ToolSession } from './session';

export async function cropMulti(s: ToolSession, a: ToolArgs<'crop_multi'>): Promise<ToolOutput> {
  const boxes = a.bboxes.map((r, i) =>
    resolveRegion(r.cell !== undefined ? { cell: r.cell, span: r.span } : { bbox: r.bbox as number[] }, s.image.width, s.image.height, `bboxes[${i}]`),
  );
  const images = await Promise.all(boxes.map((b) => s.view(b)));
  return { text: `crop_multi ${boxes.map((b) => `[${b.join(', ')}]`).join(' ')}`, images, boxes };
}
