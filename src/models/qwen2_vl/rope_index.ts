// M-RoPE position ids of Qwen2-VL / Qwen2.5-VL (images only): the 3-D (temporal, height, width)
// positions Hugging Face's `get_rope_index` gives, for ONE unpadded sequence (the native engine packs
// sequences ragged), plus the continuation of a sequence by appended segments and decode steps.
// Plain-PyTorch reference: python/reference/qwen2_vl_text.py get_rope_index.
//
// Text tokens get t = h = w = a running index. An image (a run of exactly gt·(gh/merge)·(gw/merge)
// <|image_pad|> tokens, consuming the next grid) placed after text ending at index s-1 gets
// t = s + temporal index (Qwen2.5-VL images: always s, second_per_grid_t being 0 for images),
// h = s + merged row, w = s + merged column; the text after it resumes at the image's max + 1.
//
// Finding images. HF counts the <|vision_start|> tokens followed by <|image_pad|> and then takes, that
// many times, the next <|image_pad|> at or after the end of the previous image, skipping grid-size
// tokens without looking at them. For well-formed input (each image's pads one run, right after a
// <|vision_start|>, as long as its grid) that is exactly "each maximal run of <|image_pad|> is an image",
// which is what this does. Malformed input, where HF silently misplaces positions (or fails later when
// the image features do not match the pads), is rejected instead:
//   - a pad run not immediately preceded by <|vision_start|> in the same segment (so an image cannot
//     be split across segments either);
//   - a run whose length differs from its grid's merged token count, more runs than grids, or fewer;
//   - any <|video_pad|> token (videos are not supported; the reference raises too).
// A <|vision_start|> not followed by a pad is plain text, as in HF (where a trailing one, at the end of
// the whole sequence, raises an IndexError instead).
import type { Family, QwenVLConfig } from './config';

export class RopeIndexError extends RangeError {
  override name = 'RopeIndexError';
  constructor(
    /** The argument at fault: `ids`, `grids`, `opts` or `start`. */
    readonly argument: string,
    message: string,
  ) {
    super(`ropeIndex: ${argument}: ${message}`);
  }
}

export interface RopeIndexOptions {
  /** <|image_pad|> id (config image_token_id). */
  imageTokenId: number;
  /** <|vision_start|> id (config vision_start_token_id). */
  visionStartTokenId: number;
  /** <|video_pad|> id; when given, its presence is an error (videos are not supported). */
  videoTokenId?: number;
  /** vision_config.spatial_merge_size: grids are in patches, positions in merged tokens. */
  merge: number;
  /** Qwen2-VL advances t along an image's temporal axis; Qwen2.5-VL keeps t at the image start. */
  family: Family;
}

/** Where a sequence stands: a previous call's result, to append a segment or decode steps to it. */
export interface RopeState {
  /** The position the next appended token begins at. */
  next: number;
  /** The sequence's rope delta so far (next − its token count); absent: 0. */
  ropeDelta?: number;
}

export interface RopeIndex {
  /** [3 · n], row-major: the t-row, then the h-row, then the w-row. */
  positions: Int32Array;
  /** Max position + 1: where the next appended token's positions begin (decode step i: next + i, all axes). */
  next: number;
  /** next − the whole sequence's token count (start.ropeDelta carried): HF's rope_deltas; decode position = cache_position + ropeDelta. */
  ropeDelta: number;
}

const MAX_POSITION = 0x7fffffff;

/** The options of a parsed config.json. */
export function ropeOptions(cfg: QwenVLConfig): RopeIndexOptions {
  return { imageTokenId: cfg.tokens.image, visionStartTokenId: cfg.tokens.visionStart, videoTokenId: cfg.tokens.video, merge: cfg.vision.merge, family: cfg.family };
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);

/**
 * 3-D positions of `ids` (one sequence, no padding) whose images have `grids` ([t, h, w] in patches,
 * as image_grid_thw), in order. With `start` (a previous call's result) the segment continues that
 * sequence: the positions are those a single call over the whole sequence gives.
 */
export function ropeIndex(ids: ArrayLike<number>, grids: ReadonlyArray<readonly [number, number, number]>, opts: RopeIndexOptions, start?: RopeState): RopeIndex {
  if (!ids || typeof ids !== 'object' || !isInt(ids.length)) throw new RopeIndexError('ids', `expected an array of token ids but received ${typeof ids}`);
  if (!Array.isArray(grids)) throw new RopeIndexError('grids', `expected an array of [t, h, w] but received ${typeof grids}`);
  const { imageTokenId: image, visionStartTokenId: visionStart, videoTokenId: video, merge, family } = opts ?? ({} as RopeIndexOptions);
  if (!isInt(image) || !isInt(visionStart)) throw new RopeIndexError('opts', 'imageTokenId and visionStartTokenId must be integers');
  if (video !== undefined && !isInt(video)) throw new RopeIndexError('opts', `videoTokenId must be an integer but received ${video}`);
  if (!isInt(merge) || merge < 1) throw new RopeIndexError('opts', `merge must be a positive integer but received ${merge}`);
  if (family !== 'qwen2_vl' && family !== 'qwen2_5_vl') throw new RopeIndexError('opts', `family must be qwen2_vl or qwen2_5_vl but received ${String(family)}`);
  const first = start?.next ?? 0;
  const delta0 = start?.ropeDelta ?? 0;
  if (!isInt(first) || first < 0) throw new RopeIndexError('start', `next must be a non-negative integer but received ${start?.next}`);
  if (!isInt(delta0)) throw new RopeIndexError('start', `ropeDelta must be an integer but received ${start?.ropeDelta}`);
  const n = ids.length;
  // every token advances the position by at most 1 (an image spans at most as many positions as its tokens)
  if (first + n > MAX_POSITION) throw new RopeIndexError('start', `positions would pass ${MAX_POSITION} (next ${first}, ${n} tokens)`);
  grids.forEach((g, k) => {
    if (!Array.isArray(g) || g.length !== 3 || !g.every((v) => isInt(v) && v >= 1)) throw new RopeIndexError('grids', `[${k}]: expected [t, h, w] of positive integers but received ${JSON.stringify(g)}`);
    if (g[1] % merge || g[2] % merge) throw new RopeIndexError('grids', `[${k}]: h and w of ${JSON.stringify(g)} must be divisible by merge ${merge}`);
  });

  const positions = new Int32Array(3 * n);
  const tStep = family === 'qwen2_vl' ? 1 : 0;
  let p = first;
  let g = 0;
  for (let i = 0; i < n; ) {
    const tok = ids[i];
    if (tok === image) {
      if (i === 0 || ids[i - 1] !== visionStart) throw new RopeIndexError('ids', `the <|image_pad|> run at ${i} does not follow a <|vision_start|>`);
      let j = i + 1;
      while (j < n && ids[j] === image) j++;
      if (g >= grids.length) throw new RopeIndexError('grids', `image ${g} (the <|image_pad|> run at ${i}) has no grid: ${grids.length} given`);
      const [gt, gh, gw] = grids[g];
      const mh = gh / merge, mw = gw / merge;
      if (j - i !== gt * mh * mw) throw new RopeIndexError('ids', `image ${g}: the <|image_pad|> run at ${i} has ${j - i} tokens but its grid ${JSON.stringify(grids[g])} merges to ${gt * mh * mw}`);
      let k = i;
      for (let t = 0; t < gt; t++) {
        for (let r = 0; r < mh; r++) {
          for (let c = 0; c < mw; c++, k++) {
            positions[k] = p + t * tStep;
            positions[n + k] = p + r;
            positions[2 * n + k] = p + c;
          }
        }
      }
      p += Math.max((gt - 1) * tStep, mh - 1, mw - 1) + 1;
      g++;
      i = j;
    } else {
      if (tok === video) throw new RopeIndexError('ids', `<|video_pad|> at ${i}: videos are not supported`);
      positions[i] = positions[n + i] = positions[2 * n + i] = p++;
      i++;
    }
  }
  if (g !== grids.length) throw new RopeIndexError('grids', `${grids.length} grids but ${g} <|image_pad|> runs in ids`);
  return { positions, next: p, ropeDelta: delta0 + (p - first) - n };
}
