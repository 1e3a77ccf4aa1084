// Shared prefixes of a forward (ForwardOptions.prefixGroups) → the addon's prefixGroup/prefixLength,
// validated against the packed batch: what the native side compares (ids, view bytes after channel
// replication, mask) is compared here too, so that an error names the caller's argument.
import type { RawBatch } from '../native/policy';
import { IMAGE_ID } from '../tokenizer';
import type { PrefixGroup } from './types';

/** Longest common prefix (tokens) of sequences `a` and `b` of a packed batch, capped at `cap`. */
function commonPrefix(raw: RawBatch, starts: number[], imageStarts: number[], perImage: number, a: number, b: number, cap: number): number {
  const ta = starts[a];
  const tb = starts[b];
  let ia = imageStarts[a];
  let ib = imageStarts[b];
  for (let i = 0; i < cap; i++) {
    const id = raw.tokens[ta + i];
    if (id !== raw.tokens[tb + i]) return i;
    if (raw.mask && (raw.mask[ta + i] !== 0) !== (raw.mask[tb + i] !== 0)) return i;
    if (id !== IMAGE_ID) continue;
    const va = raw.images.subarray(ia * perImage, (ia + 1) * perImage);
    const vb = raw.images.subarray(ib * perImage, (ib + 1) * perImage);
    for (let k = 0; k < perImage; k++) if (va[k] !== vb[k]) return i;
    ia++;
    ib++;
  }
  return cap;
}

/**
 * Validates `groups` (named `name` in errors) against a packed batch of `raw.lengths.length`
 * sequences and resolves omitted lengths to the longest common prefix.
 */
export function rawPrefixGroups(raw: RawBatch, perImage: number, groups: unknown, name = 'prefixGroups'): { prefixGroup: Int32Array; prefixLength: Int32Array } {
  const n = raw.lengths.length;
  if (!Array.isArray(groups)) throw new TypeError(`Expected an Array of { seqs, length? } for \`${name}\``);
  const starts: number[] = [];
  const imageStarts: number[] = [];
  let t = 0;
  let im = 0;
  for (let s = 0; s < n; s++) {
    starts.push(t);
    imageStarts.push(im);
    for (let k = 0; k < raw.lengths[s]; k++) im += raw.tokens[t + k] === IMAGE_ID ? 1 : 0;
    t += raw.lengths[s];
  }
  const prefixGroup = new Int32Array(n).fill(-1);
  const prefixLength = new Int32Array(groups.length);
  (groups as unknown[]).forEach((g, k) => {
    const where = `${name}[${k}]`;
    if (!g || typeof g !== 'object' || !Array.isArray((g as PrefixGroup).seqs)) throw new TypeError(`Expected { seqs: number[], length?: number } for \`${where}\``);
    const { seqs, length } = g as PrefixGroup;
    if (seqs.length === 0) throw new RangeError(`Expected at least one sequence in \`${where}.seqs\``);
    for (const s of seqs) {
      if (!Number.isInteger(s) || s < 0 || s >= n) throw new RangeError(`Expected sequence indices in [0, ${n}) for \`${where}.seqs\` but received ${s}`);
      if (prefixGroup[s] >= 0) throw new RangeError(`Sequence ${s} is in \`${name}[${prefixGroup[s]}]\` and \`${where}\` (one group per sequence)`);
      prefixGroup[s] = k;
    }
    let common = Math.min(...seqs.map((s) => raw.lengths[s]));
    for (const s of seqs.slice(1)) common = commonPrefix(raw, starts, imageStarts, perImage, seqs[0], s, common);
    if (length === undefined) {
      prefixLength[k] = common;
      return;
    }
    if (!Number.isInteger(length) || length < 0) throw new RangeError(`Expected a non-negative integer for \`${where}.length\` but received ${String(length)}`);
    if (length > common) {
      throw new RangeError(`Expected \`${where}.length\` <= ${common} (the tokens, views and mask its sequences share) but received ${length}`);
    }
    prefixLength[k] = length;
  });
  return { prefixGroup, prefixLength };
}
