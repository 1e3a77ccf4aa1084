// Env views as the image_url parts of a chat message: PNG data URIs, a grey view as a 1-channel PNG
// (sharp writes grey raw input as RGB unless told the colourspace), so the server decodes the env's pixels.
import sharp from 'sharp';
import type { ViewImage } from '../../tools/image';

/** `data:image/png;base64,…` of a view (lossless: decoding it gives the view's pixels). */
export async function viewDataUri(v: ViewImage): Promise<string> {
  const raw = Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength);
  let img = sharp(raw, { raw: { width: v.width, height: v.height, channels: v.channels } });
  if (v.channels === 1) img = img.toColourspace('b-w');
  const png = await img.png().toBuffer();
  return 'data:image/png;base64,' + png.toString('base64');
}

/** The data URIs of views, in order. */
export function viewDataUris(views: readonly ViewImage[] | undefined): Promise<string[]> {
  return Promise.all((views ?? []).map(viewDataUri));
}
