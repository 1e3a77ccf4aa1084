// A model's ids → text, for choices as their tokens come in (./choice_text.ts): the text of all ids,
// and how many leading ids are safe to stream (never half a UTF-8 character). medgym-vlm's ids are
// bytes and specials (SPEC §1); Qwen's decoder is ./qwen_text.ts.
import { BYTE_VOCAB, decode } from '../../tokenizer';

export interface ChoiceDecoder {
  /** The text of `ids` (what the response's content holds). */
  decode(ids: number[]): string;
  /** The longest prefix of `ids` whose text is final: later ids cannot change it. */
  completeLength(ids: number[]): number;
  /** The bytes one id stands for (logprobs' `bytes`), when the model knows them. */
  tokenBytes?(id: number): number[];
}

/** Trailing byte ids that start a UTF-8 character still missing continuation bytes: held back. */
function incompleteTail(ids: number[]): number {
  for (let back = 1; back <= Math.min(4, ids.length); back++) {
    const b = ids[ids.length - back];
    if (b >= BYTE_VOCAB) return 0;
    if ((b & 0xc0) === 0x80) continue; // continuation byte: look further back for its lead
    const need = b >= 0xf0 && b < 0xf8 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

export const medgymDecoder: ChoiceDecoder = {
  decode,
  completeLength: (ids) => ids.length - incompleteTail(ids),
  tokenBytes: (id) => (id < BYTE_VOCAB ? [id] : Array.from(new TextEncoder().encode(decode([id])))),
};
