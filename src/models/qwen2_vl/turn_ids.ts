// Which Qwen ids end a turn and which are never sampled, for every place that generates with a Qwen
// model (QwenEnvSession for the env, `medgym serve --model` for OpenAI clients).
import type { QwenTokenizer } from './tokenizer';

/** <|im_end|>, <|endoftext|> and the eos ids of generation_config / tokenizer_config. */
export function qwenEndIds(tok: QwenTokenizer): number[] {
  return [...new Set([tok.special.imEnd, tok.special.endOfText, ...tok.eosIds])];
}

/** Control tokens other than the end ids, and ids in [tokenizer vocabulary, model vocabulary) that have no text. */
export function qwenAlwaysBanned(tok: QwenTokenizer, modelVocabSize: number, endIds: readonly number[] = qwenEndIds(tok)): number[] {
  const banned = tok.addedTokens.filter((t) => t.special && !endIds.includes(t.id) && t.id < modelVocabSize).map((t) => t.id);
  for (let id = tok.vocabSize; id < modelVocabSize; id++) banned.push(id);
  return banned;
}
