// view_original: the whole image at the default window (clears a window set earlier).
import type { ToolOutput, ToolSession } from './session';

export async function viewOriginal(s: ToolSession): Promise<ToolOutput> {
  s.window = undefined;
  const img = await s.view();
  return { text: `view_original ${s.image.width}x${s.image.height}`, images: [img], boxes: [s.fullBox()] };
}
