// zoom_in: one region of the original at full resolution, resized to the view.
import { resolveRegion } from './geometry';
import type { ToolArgs } from './schemas';
import type { ToolOutput, ToolSession } from './session';

export async function zoomIn(s: ToolSession, a: ToolArgs<'zoom_in'>): Promise<ToolOutput> {
  const spec = a.cell !== undefined ? { cell: a.cell, span: a.span, scale: a.scale } : { bbox: a.bbox as number[], scale: a.scale };
  const box = resolveRegion(spec, s.image.width, s.image.height);
  const img = await s.view(box);
  return { text: `zoom_in [${box.join(', ')}]`, images: [img], boxes: [box] };
}
