// Packing of policy sequences into the addon's ragged batch (token ids, lengths, views in the
// model's HWC layout), every field validated with its name at the boundary.
import type { RawBatch } from '../native/policy';
import { IMAGE_ID } from '../tokenizer';
import type { ViewImage } from '../tools/image';
import type { PolicyConfig } from './types';

/** Typed-array check that works across realms (jest's vm sandbox, worker threads). */
export function isTyped(x: unknown, type: 'Float32Array' | 'Uint8Array'): boolean {
  return ArrayBuffer.isView(x) && Object.prototype.toString.call(x) === `[object ${type}]`;
}

export function isIntArrayLike(x: unknown): x is ArrayLike<number> {
  return !!x && typeof x === 'object' && typeof (x as { length?: unknown }).length === 'number';
}

/** Packs sequences into the addon's ragged batch, validating every field with its name. */
export function packBatch(cfg: PolicyConfig, seqs: { tokens: ArrayLike<number>; images?: ViewImage[]; mask?: ArrayLike<number> }[], what: string, withMask: boolean): RawBatch {
  if (!Array.isArray(seqs)) throw new TypeError(`Expected an Array of sequences for \`${what}\``);
  if (seqs.length === 0) throw new RangeError(`Expected at least one sequence in \`${what}\``);
  const lengths = new Int32Array(seqs.length);
  let total = 0;
  let nImages = 0;
  const np = (cfg.imageSize / cfg.patch) ** 2;
  seqs.forEach((s, i) => {
    if (!s || typeof s !== 'object') throw new TypeError(`Expected an object for \`${what}[${i}]\``);
    if (!isIntArrayLike(s.tokens)) throw new TypeError(`Expected an array of token ids for \`${what}[${i}].tokens\``);
    lengths[i] = s.tokens.length;
    total += s.tokens.length;
    let imgs = 0;
    let expanded = 0;
    for (let k = 0; k < s.tokens.length; k++) {
      const id = s.tokens[k];
      if (!Number.isInteger(id) || id < 0 || id >= cfg.vocabSize) {
        throw new RangeError(`Expected token ids in [0, ${cfg.vocabSize}) for \`${what}[${i}].tokens\` but position ${k} is ${id}`);
      }
      if (id === IMAGE_ID) imgs++;
      expanded += id === IMAGE_ID ? np : 1;
    }
    const images = s.images ?? [];
    if (!Array.isArray(images)) throw new TypeError(`Expected an Array of views for \`${what}[${i}].images\``);
    if (images.length !== imgs) {
      throw new RangeError(`Expected ${imgs} images (one per <|image|>) for \`${what}[${i}].images\` but received ${images.length}`);
    }
    if (withMask && expanded > cfg.maxSeq) {
      throw new RangeError(`\`${what}[${i}].tokens\` expand to ${expanded} positions (each <|image|> is ${np}), more than maxSeq ${cfg.maxSeq}`);
    }
    if (s.mask !== undefined && (!isIntArrayLike(s.mask) || s.mask.length !== s.tokens.length)) {
      throw new RangeError(`Expected \`${what}[${i}].mask\` of length ${s.tokens.length}`);
    }
    nImages += imgs;
  });
  const tokens = new Int32Array(total);
  const perImage = cfg.imageSize * cfg.imageSize * cfg.channels;
  const images = new Uint8Array(nImages * perImage);
  const anyMask = withMask && seqs.some((s) => s.mask !== undefined);
  const mask = anyMask ? new Int32Array(total).fill(1) : undefined;
  let t = 0;
  let im = 0;
  seqs.forEach((s, i) => {
    if (mask && s.mask) for (let k = 0; k < s.tokens.length; k++) mask[t + k] = s.mask[k] ? 1 : 0;
    for (let k = 0; k < s.tokens.length; k++) tokens[t++] = s.tokens[k];
    (s.images ?? []).forEach((v, j) => {
      writeView(cfg, v, images, im * perImage, `${what}[${i}].images[${j}]`);
      im++;
    });
  });
  return { tokens, lengths, images, nImages, mask };
}

/** Copies a view into the model's layout (HWC uint8), replicating a 1-channel view to 3 channels. */
function writeView(cfg: PolicyConfig, v: ViewImage, out: Uint8Array, at: number, name: string): void {
  if (!v || typeof v !== 'object' || !isTyped(v.data, 'Uint8Array')) throw new TypeError(`Expected a ViewImage with Uint8Array data for \`${name}\``);
  if (v.width !== cfg.imageSize || v.height !== cfg.imageSize) {
    throw new RangeError(`Expected a ${cfg.imageSize}×${cfg.imageSize} view for \`${name}\` but received ${v.width}×${v.height}`);
  }
  if (!(v.channels === cfg.channels || (v.channels === 1 && cfg.channels === 3))) {
    throw new RangeError(`Expected a view with ${cfg.channels} channel(s) for \`${name}\` but received ${v.channels}`);
  }
  const n = cfg.imageSize * cfg.imageSize;
  if (v.data.length !== n * v.channels) throw new RangeError(`Expected ${n * v.channels} bytes in \`${name}.data\` but received ${v.data.length}`);
  if (v.channels === cfg.channels) out.set(v.data, at);
  else for (let p = 0; p < n; p++) out[at + 3 * p] = out[at + 3 * p + 1] = out[at + 3 * p + 2] = v.data[p];
}
