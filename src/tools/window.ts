// window: intensity window on a greyscale image (CT/MRI: centre and width in stored units). It stays
// in force for later zooms and crops until view_original, as a radiologist's window setting does.
import type { ToolArgs } from './schemas';
import type { ToolOutput, ToolSession } from './session';

export class ToolUseError extends Error {}

export async function windowTool(s: ToolSession, a: ToolArgs<'window'>): Promise<ToolOutput> {
  if (s.image.channels !== 1) throw new ToolUseError('window applies to greyscale images; this image is RGB');
  if (!Number.isFinite(a.center) || !Number.isFinite(a.width)) throw new ToolUseError('window center and width must be finite numbers');
  s.window = { center: a.center, width: a.width };
  const img = await s.view();
  const [lo, hi] = s.storedRange();
  return { text: `window center ${a.center} width ${a.width} (image values ${lo}-${hi})`, images: [img], boxes: [s.fullBox()] };
}
