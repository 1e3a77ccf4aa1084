// rotate: the whole image turned clockwise by a multiple of 90° (exact, no resampling before resize).
import type { ToolArgs } from './schemas';
import type { ToolOutput, ToolSession } from './session';

export async function rotate(s: ToolSession, a: ToolArgs<'rotate'>): Promise<ToolOutput> {
  const img = await s.view(undefined, { rotate: a.angle as 90 | 180 | 270 });
  return { text: `rotate ${a.angle}`, images: [img], boxes: [s.fullBox()] };
}
