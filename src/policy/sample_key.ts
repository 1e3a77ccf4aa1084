// A sequence's SPEC §7 stream key with every field filled: what sessions that translate the env's
// calls for another engine (HttpSession, QwenEnvSession) keep per sequence. The draw counter is not
// part of it: each session tracks that itself.
import type { SampleKey } from './types';

export type FullSampleKey = Required<Pick<SampleKey, 'seed' | 'step' | 'promptIndex' | 'sampleIndex'>>;

/** `k`'s fields over `dflt`'s; a TypeError / RangeError naming `name` for a bad key. */
export function fullSampleKey(k: SampleKey | undefined, dflt: FullSampleKey, name: string): FullSampleKey {
  if (k !== undefined && (k === null || typeof k !== 'object')) throw new TypeError(`Expected an object for \`${name}\``);
  const out = { ...dflt };
  for (const f of ['seed', 'step', 'promptIndex', 'sampleIndex'] as const) {
    const v = k?.[f];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`Expected a non-negative integer for \`${name}.${f}\` but received ${String(v)}`);
    out[f] = v;
  }
  return out;
}
