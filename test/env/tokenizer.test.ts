import { ANSWER_ID, BOS_ID, decode, encode, EOS_ID, IMAGE_ID, SPECIAL_TOKENS, THINK_END_ID, TOOL_CALL_ID, VOCAB_SIZE } from '../../src/tokenizer';
import { Rng } from '../helpers/random';

describe('tokenizer (SPEC §1)', () => {
  test('vocabulary: 256 bytes then the 12 specials in order', () => {
    expect(VOCAB_SIZE).toBe(268);
    expect(SPECIAL_TOKENS[0]).toBe('<|bos|>');
    expect(encode('<|bos|><|eos|><|image|><tool_call><answer></think>')).toEqual([BOS_ID, EOS_ID, IMAGE_ID, TOOL_CALL_ID, ANSWER_ID, THINK_END_ID]);
    SPECIAL_TOKENS.forEach((s, i) => expect(encode(s)).toEqual([256 + i]));
  });

  test('text is UTF-8 bytes; specials matched greedily left to right', () => {
    expect(encode('Aé')).toEqual([65, 0xc3, 0xa9]);
    expect(encode('<<answer>>')).toEqual([60, ANSWER_ID, 62]);
    expect(encode('<answer')).toEqual([...Buffer.from('<answer')]);
    expect(encode('x<tool_call></tool_call>y')).toEqual([120, 260, 261, 121]);
  });

  test('exact round trip for random strings mixing specials, ASCII, CJK and emoji', () => {
    const rng = new Rng(7);
    const pieces = [...SPECIAL_TOKENS, 'a', ' ', '\n', '<', '>', '|', 'é', '肺', '🩻', '<tool', 'answer>', '\u0000', '\uFEFF'];
    for (let t = 0; t < 300; t++) {
      let s = '';
      for (let k = rng.int(0, 30); k > 0; k--) s += pieces[rng.int(0, pieces.length)];
      expect(decode(encode(s))).toBe(s);
    }
  });

  test('lone surrogates become U+FFFD; invalid byte sequences decode to U+FFFD', () => {
    expect(decode(encode('a\uD800b'))).toBe('a\uFFFDb');
    expect(decode([0xff, 65])).toBe('\uFFFDA');
    expect(decode([0xe8, 0x82, ANSWER_ID])).toBe('\uFFFD<answer>');
  });

  test('decode rejects ids outside the vocabulary', () => {
    expect(() => decode([268])).toThrow(/token id/);
    expect(() => decode([-1])).toThrow(/token id/);
    expect(() => decode([1.5])).toThrow(/token id/);
  });
});
