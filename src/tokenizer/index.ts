// The SPEC §1 byte-level tokenizer: ids 0–255 are raw UTF-8 bytes, ids from 256 are the special
// tokens in SPECIAL_TOKENS order. The env tokenizes its own responses with it once (SPEC §7) and the
// policy imports the same module, so both sides agree on every id.

/** Special tokens in id order (id = 256 + index). New ones are only ever appended. */
export const SPECIAL_TOKENS = [
  '<|bos|>',
  '<|eos|>',
  '<|pad|>',
  '<|image|>',
  '<tool_call>',
  '</tool_call>',
  '<tool_response>',
  '</tool_response>',
  '<answer>',
  '</answer>',
  '<think>',
  '</think>',
] as const;

export type SpecialToken = (typeof SPECIAL_TOKENS)[number];

export const BYTE_VOCAB = 256;
export const VOCAB_SIZE = BYTE_VOCAB + SPECIAL_TOKENS.length; // 268

export const BOS_ID = 256;
export const EOS_ID = 257;
export const PAD_ID = 258;
export const IMAGE_ID = 259;
export const TOOL_CALL_ID = 260;
export const TOOL_CALL_END_ID = 261;
export const TOOL_RESPONSE_ID = 262;
export const TOOL_RESPONSE_END_ID = 263;
export const ANSWER_ID = 264;
export const ANSWER_END_ID = 265;
export const THINK_ID = 266;
export const THINK_END_ID = 267;

/** Id of a special token string. */
export function specialId(token: SpecialToken): number {
  return BYTE_VOCAB + SPECIAL_TOKENS.indexOf(token);
}

export function isSpecial(id: number): boolean {
  return id >= BYTE_VOCAB && id < VOCAB_SIZE;
}

// Longest first so that greedy matching never stops at a shorter special that prefixes a longer one.
const BY_LENGTH = SPECIAL_TOKENS.map((s, i) => ({ s, id: BYTE_VOCAB + i })).sort((a, b) => b.s.length - a.s.length);
const utf8 = new TextEncoder();

/**
 * Text → ids. Special strings are matched greedily left to right; all other text becomes its UTF-8
 * bytes. Lone UTF-16 surrogates (not valid Unicode) are encoded as U+FFFD, as TextEncoder does.
 */
export function encode(text: string): number[] {
  const out: number[] = [];
  let start = 0;
  let i = text.indexOf('<');
  while (i !== -1) {
    const hit = BY_LENGTH.find((t) => text.startsWith(t.s, i));
    if (hit) {
      pushBytes(out, text.slice(start, i));
      out.push(hit.id);
      start = i + hit.s.length;
      i = text.indexOf('<', start);
    } else {
      i = text.indexOf('<', i + 1);
    }
  }
  pushBytes(out, text.slice(start));
  return out;
}

function pushBytes(out: number[], s: string): void {
  if (s.length === 0) return;
  const b = utf8.encode(s);
  for (let k = 0; k < b.length; k++) out.push(b[k]);
}

/**
 * Ids → text. Byte runs are decoded as UTF-8 with U+FFFD for invalid sequences (a policy may sample
 * any byte); special ids become their strings. Throws on ids outside the vocabulary.
 */
export function decode(ids: ArrayLike<number>): string {
  const dec = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
  let text = '';
  let bytes: number[] = [];
  const flush = (): void => {
    if (bytes.length) text += dec.decode(Uint8Array.from(bytes));
    bytes = [];
  };
  for (let k = 0; k < ids.length; k++) {
    const id = ids[k];
    if (!Number.isInteger(id) || id < 0 || id >= VOCAB_SIZE) {
      throw new RangeError(`Expected token id in [0, ${VOCAB_SIZE}) at position ${k} but received ${id}`);
    }
    if (id < BYTE_VOCAB) bytes.push(id);
    else {
      flush();
      text += SPECIAL_TOKENS[id - BYTE_VOCAB];
    }
  }
  flush();
  return text;
}

/** Count of tokens text encodes to, without building the array. */
export function countTokens(text: string): number {
  return encode(text).length;
}
