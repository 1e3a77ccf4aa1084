// Attention of a few new queries over a KV cache, row by row (the decode step of generation).
// Same arguments and results as attentionCached (without a key mask). See native/cpu/attention_decode.h.
import { nativeFunctions } from './runtime';
import type { AttentionCachedArgs } from './attention';

export type AttentionDecodeArgs = Omit<AttentionCachedArgs, 'mask'>;

interface DecodeNative {
  attentionDecode(a: AttentionDecodeArgs & { out: Float32Array }): void;
  attentionDecodeAsync(a: AttentionDecodeArgs & { out: Float32Array }): Promise<void>;
}
const native = () => nativeFunctions<DecodeNative>();
const withOut = (a: AttentionDecodeArgs) => {
  const n = a.B * a.Tq * a.C;
  return { ...a, out: a.out ?? new Float32Array(Number.isSafeInteger(n) && n > 0 ? n : 0) };
};

/** Causal attention of Tq new queries (the last of Tk positions) over cached k/v; returns out [B,Tq,C]. */
export function attentionDecode(args: AttentionDecodeArgs): Float32Array {
  const a = withOut(args);
  native().attentionDecode(a);
  return a.out;
}
export async function attentionDecodeAsync(args: AttentionDecodeArgs): Promise<Float32Array> {
  const a = withOut(args);
  await native().attentionDecodeAsync(a);
  return a.out;
}
