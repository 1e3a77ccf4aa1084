// Qwen ids → content text: the tokenizer's decoding without control tokens (<|im_end|> and the like
// are not content; <tool_call> in Qwen2.5's vocabulary is not a control token and stays). A byte-level
// BPE id may hold part of a UTF-8 character, which decodes to U+FFFD until the rest comes: such a
// tail is held back from streaming.
import type { QwenTokenizer } from '../../models/qwen2_vl/tokenizer';
import type { ChoiceDecoder } from './choice_decoder';

/** A UTF-8 character spans at most 4 bytes, so at most 3 trailing ids can be waiting for the rest. */
const MAX_PENDING_IDS = 3;

export function qwenDecoder(tokenizer: QwenTokenizer): ChoiceDecoder {
  const decode = (ids: number[]): string => tokenizer.decode(ids, { skipSpecialTokens: true });
  return {
    decode,
    completeLength(ids) {
      for (let back = 0; back <= Math.min(MAX_PENDING_IDS, ids.length); back++) {
        if (!decode(ids.slice(0, ids.length - back)).endsWith('\uFFFD')) return ids.length - back;
      }
      return ids.length; // a U+FFFD the model wrote itself
    },
  };
}
