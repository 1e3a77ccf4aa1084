// enhance: whole-image histogram equalization (JS, exact), CLAHE or unsharp masking (sharp).
import { equalize } from './render';
import type { ToolArgs } from './schemas';
import type { ToolOutput, ToolSession } from './session';

export async function enhance(s: ToolSession, a: ToolArgs<'enhance'>): Promise<ToolOutput> {
  let img;
  if (a.method === 'equalize') img = await s.view(undefined, {}, () => equalize(s.pixels().data, s.image.channels), 'equalize');
  else if (a.method === 'clahe') img = await s.view(undefined, { clahe: true });
  else img = await s.view(undefined, { sharpen: true });
  return { text: `enhance ${a.method}`, images: [img], boxes: [s.fullBox()] };
}
