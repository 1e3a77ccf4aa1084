// Request images → pixels: data: URIs (PNG or JPEG, base64) decoded with sharp. medgym-vlm views
// (decodeView) go to the model's channels and must already be imageSize × imageSize (the server does
// not resize: what the model sees is what the client sent); Qwen images (decodeImage) may be any size
// up to MAX_IMAGE_PIXELS, as RGB. Remote URLs are refused (no fetching on behalf of clients).
import sharp from 'sharp';
import type { ViewImage } from '../../tools/image';
import { invalid } from './errors';

export interface ViewSpec {
  imageSize: number;
  channels: 1 | 3;
}

const DATA_URI = /^data:(image\/(?:png|jpeg|jpg));base64,([A-Za-z0-9+/=\s]*)$/i;

/** Decodes one image_url; `param` names it in errors (`messages[1].content[0]`). */
export async function decodeView(url: string, spec: ViewSpec, param: string): Promise<ViewImage> {
  if (/^https?:/i.test(url)) throw invalid(param, 'remote image URLs are not supported: send the image as a data: URI (data:image/png;base64,…)', 'remote_image_url');
  const m = DATA_URI.exec(url);
  if (!m) throw invalid(param, 'expected a data:image/png;base64,… or data:image/jpeg;base64,… URI', 'invalid_image');
  const bytes = Buffer.from(m[2], 'base64');
  const { imageSize: S, channels } = spec;
  let meta: Awaited<ReturnType<ReturnType<typeof sharp>['metadata']>>;
  try {
    // The header only: the size check below comes before any decoding, which is limited to S×S pixels.
    meta = await sharp(bytes).metadata();
  } catch (err) {
    throw invalid(param, `unreadable image (${err instanceof Error ? err.message : String(err)}); expected ${S}×${S}`, 'invalid_image');
  }
  if (meta.format !== 'png' && meta.format !== 'jpeg') throw invalid(param, `expected a PNG or JPEG image but received ${meta.format}`, 'invalid_image');
  if (meta.width !== S || meta.height !== S) throw invalid(param, `expected a ${S}×${S} view but received ${meta.width}×${meta.height}`, 'invalid_image_size');
  try {
    const p = sharp(bytes, { limitInputPixels: S * S }).removeAlpha().toColourspace(channels === 1 ? 'b-w' : 'srgb');
    const { data, info } = await p.raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== channels || data.length !== S * S * channels) throw new Error(`decoded to ${info.channels} channels`);
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: S, height: S, channels };
  } catch (err) {
    throw invalid(param, `unreadable image (${err instanceof Error ? err.message : String(err)})`, 'invalid_image');
  }
}

/** Largest image a Qwen request may send (pixels before smart_resize): 4096 × 4096. */
export const MAX_IMAGE_PIXELS = 4096 * 4096;

/**
 * Decodes one image_url of any size to RGB (Qwen models resize it themselves: smart_resize); the
 * same data: URI rules as decodeView. `param` names it in errors.
 */
export async function decodeImage(url: string, param: string): Promise<ViewImage> {
  if (/^https?:/i.test(url)) throw invalid(param, 'remote image URLs are not supported: send the image as a data: URI (data:image/png;base64,…)', 'remote_image_url');
  const m = DATA_URI.exec(url);
  if (!m) throw invalid(param, 'expected a data:image/png;base64,… or data:image/jpeg;base64,… URI', 'invalid_image');
  const bytes = Buffer.from(m[2], 'base64');
  let meta: Awaited<ReturnType<ReturnType<typeof sharp>['metadata']>>;
  try {
    meta = await sharp(bytes).metadata();
  } catch (err) {
    throw invalid(param, `unreadable image (${err instanceof Error ? err.message : String(err)})`, 'invalid_image');
  }
  if (meta.format !== 'png' && meta.format !== 'jpeg') throw invalid(param, `expected a PNG or JPEG image but received ${meta.format}`, 'invalid_image');
  const w = meta.width ?? 0;
  const h = meta.height ?? 0;
  if (w * h > MAX_IMAGE_PIXELS) throw invalid(param, `image of ${w}×${h} is larger than ${MAX_IMAGE_PIXELS} pixels`, 'invalid_image_size');
  try {
    const { data, info } = await sharp(bytes, { limitInputPixels: MAX_IMAGE_PIXELS }).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || data.length !== info.width * info.height * 3) throw new Error(`decoded to ${info.channels} channels`);
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height, channels: 3 };
  } catch (err) {
    throw invalid(param, `unreadable image (${err instanceof Error ? err.message : String(err)})`, 'invalid_image');
  }
}
