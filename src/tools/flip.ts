// flip: the whole image mirrored; horizontal swaps left and right, vertical swaps top and bottom.
import type { ToolArgs } from './schemas';
import type { ToolOutput, ToolSession } from './session';

export async function flip(s: ToolSession, a: ToolArgs<'flip'>): Promise<ToolOutput> {
  const img = await s.view(undefined, a.axis === 'horizontal' ? { flop: true } : { flip: true });
  return { text: `flip ${a.axis}`, images: [img], boxes: [s.fullBox()] };
}
