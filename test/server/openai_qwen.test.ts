// `medgym serve --model`: a Qwen2-VL directory (the tiny random fixture, with a tokenizer over its ids
// and Qwen2-VL's processor chat template) behind the official `openai` client. The prompt is the
// model's chat template encoded with each image's pad run; a greedy completion is token-equal to an
// in-process QwenSession generation of the same ids; streaming = non-streaming; concurrent requests =
// their solo answers; tools and assistant tool_calls are rendered; bad input is a typed 4xx.
import * as fs from 'node:fs';
import OpenAI from 'openai';
import { applyChatTemplate, QwenTokenizer, type QwenMessage } from '../../src/models/qwen2_vl';
import { QwenVLModel } from '../../src/models/qwen2_vl/engine';
import type { ViewImage } from '../../src/tools/image';
import { QWEN2_VL_TEMPLATE } from '../models/qwen2_vl/fixture';
import { Rng } from '../helpers/random';
import { pngDataUri, qwenModelDir, QWEN_FIXTURES, useQwenServers, type Served } from './openai_harness';

/* eslint-disable @typescript-eslint/no-explicit-any -- medgym's extensions are not in the client's types */

const DIR = qwenModelDir(QWEN_FIXTURES.qwen2_vl, false, QWEN2_VL_TEMPLATE);
afterAll(() => fs.rmSync(DIR, { recursive: true, force: true }));
const serve = useQwenServers();

function rgbImage(rng: Rng, width: number, height: number): ViewImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = rng.int(0, 256);
  return { data, width, height, channels: 3 };
}

let s: Served;
let tok: QwenTokenizer;
let model: QwenVLModel;
beforeAll(async () => {
  s = await serve(DIR);
  tok = QwenTokenizer.fromDir(DIR);
  model = await QwenVLModel.load(DIR);
}, 60_000);
afterAll(() => model.dispose());

/** What the server must stop at and never sample, derived here from the tokenizer's files. */
const endIds = (): number[] => [tok.special.imEnd, tok.special.endOfText, ...tok.eosIds].filter((v, i, a) => a.indexOf(v) === i);
const bannedIds = (): number[] => tok.addedTokens.filter((t) => t.special && !endIds().includes(t.id)).map((t) => t.id);

test('/v1/models: protocol qwen2-vl, image_tokens of a 64×64 view, the context and vocabulary; no image_size', async () => {
  const list = await s.client.models.list();
  expect(list.data).toHaveLength(1);
  const m = list.data[0] as any;
  expect(m.id).toBe('tiny-qwen');
  // 64×64 → smart_resize 56×56 → 4×4 patches of 14 → 2×2 merged = 4 pads, plus the vision delimiters.
  expect(m.medgym).toEqual({ protocol: 'qwen2-vl', channels: 3, image_tokens: 6, max_seq: 4096, vocab_size: 512 });
});

test('a greedy completion with an image equals in-process QwenSession generation of the same rendered ids', async () => {
  const rng = new Rng(7);
  const img = rgbImage(rng, 45, 30);
  const question = 'What is in the image?';
  const r = (await s.client.chat.completions.create({
    model: 'tiny-qwen',
    messages: [
      { role: 'system', content: 'You are a radiologist.' },
      { role: 'user', content: [{ type: 'image_url', image_url: { url: await pngDataUri(img) } }, { type: 'text', text: question }] },
    ],
    temperature: 0,
    max_tokens: 16,
    return_token_ids: true,
  } as any)) as any;

  // The prompt: the template's rendering with the image's merged patch count of pads.
  const messages: QwenMessage[] = [
    { role: 'system', content: 'You are a radiologist.' },
    { role: 'user', content: [{ type: 'image' }, { type: 'text', text: question }] },
  ];
  const pads = model.preprocess(img).mergedTokens;
  const want = applyChatTemplate(tok, messages, [pads]);
  expect(r.prompt_token_ids).toEqual(want.ids);
  expect(tok.decode(r.prompt_token_ids)).toContain(`<|im_start|>user\n<|vision_start|>${'<|image_pad|>'.repeat(pads)}<|vision_end|>${question}<|im_end|>\n<|im_start|>assistant\n`);
  expect(r.usage.prompt_tokens).toBe(want.ids.length);

  const session = model.createSession();
  try {
    const [id] = await session.add([{ ids: want.ids, images: [img] }], [{ seed: 0 }]);
    const [g] = await session.generate([id], { maxNewTokens: 16, temperature: 0, stopTokens: endIds(), bannedTokens: bannedIds() });
    const choice = r.choices[0];
    expect(choice.token_ids).toEqual(Array.from(g.tokens));
    expect(choice.medgym_finish_reason).toBe(g.finishReason);
    expect(choice.finish_reason).toBe(g.finishReason === 'stop_token' ? 'stop' : 'length');
    expect(choice.message.content).toBe(tok.decode(g.tokens, { skipSpecialTokens: true }));
  } finally {
    session.dispose();
  }
}, 60_000);

test('sampled choices follow medgym_sample_key: choice j samples what a QwenSession sequence with sampleIndex + j samples, log-probs included', async () => {
  const img = rgbImage(new Rng(11), 50, 40);
  const r = (await s.client.chat.completions.create({
    model: 'tiny-qwen',
    messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: await pngDataUri(img) } }, { type: 'text', text: 'Findings?' }] }],
    temperature: 1,
    top_p: 0.9,
    n: 2,
    max_tokens: 12,
    return_token_ids: true,
    logprobs: true,
    medgym_sample_key: { seed: 3, step: 1, prompt_index: 2, sample_index: 4, counter: 0 },
  } as any)) as any;
  const session = model.createSession();
  try {
    const seq = { ids: r.prompt_token_ids as number[], images: [img] };
    const ids = await session.add([seq, seq], [4, 5].map((sampleIndex) => ({ seed: 3, step: 1, promptIndex: 2, sampleIndex })));
    const gens = await session.generate(ids, { maxNewTokens: 12, temperature: 1, topP: 0.9, stopTokens: endIds(), bannedTokens: bannedIds() });
    expect(r.choices.map((c: any) => c.token_ids)).toEqual(gens.map((g) => Array.from(g.tokens)));
    // logprobs: true gives each sampled id's log-prob, as the in-process session computes it.
    expect(r.choices.map((c: any) => c.logprobs.content.map((e: { logprob: number }) => e.logprob))).toEqual(gens.map((g) => Array.from(g.logp)));
    expect(gens[0].tokens).not.toEqual(gens[1].tokens);
  } finally {
    session.dispose();
  }
}, 60_000);

test('streaming gives the text and ids of the same request without streaming (sampled, n = 2)', async () => {
  const rng = new Rng(8);
  const body = {
    model: 'tiny-qwen',
    messages: [{ role: 'user' as const, content: [{ type: 'image_url' as const, image_url: { url: await pngDataUri(rgbImage(rng, 64, 64)) } }, { type: 'text' as const, text: 'Describe it.' }] }],
    temperature: 1,
    seed: 5,
    n: 2,
    max_tokens: 24,
    return_token_ids: true,
  };
  const plain = (await s.client.chat.completions.create(body as any)) as any;
  const stream = await s.client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } } as any);
  const text = ['', ''];
  const ids: number[][] = [[], []];
  const finish: (string | null)[] = [null, null];
  let usage: any;
  for await (const chunk of stream as any) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text[c.index] += c.delta.content ?? '';
      ids[c.index].push(...(c.token_ids ?? []));
      if (c.finish_reason) finish[c.index] = c.finish_reason;
    }
  }
  expect(text).toEqual(plain.choices.map((c: any) => c.message.content));
  expect(ids).toEqual(plain.choices.map((c: any) => c.token_ids));
  expect(finish).toEqual(plain.choices.map((c: any) => c.finish_reason));
  expect(usage).toEqual(plain.usage);
  // Two sample indices of one stream seed: different samples (else the test could not tell them apart).
  expect(plain.choices[0].token_ids).not.toEqual(plain.choices[1].token_ids);
}, 60_000);

test('8 concurrent requests (images of different sizes, sampled and greedy) each equal their solo answer', async () => {
  const rng = new Rng(9);
  const bodies = await Promise.all(
    Array.from({ length: 8 }, async (_, k) => ({
      model: 'tiny-qwen',
      messages: [{ role: 'user' as const, content: [{ type: 'image_url' as const, image_url: { url: await pngDataUri(rgbImage(rng, 28 + 9 * k, 60 - 4 * k)) } }, { type: 'text' as const, text: `case ${k}` }] }],
      temperature: k % 4 === 0 ? 0 : 1,
      seed: 100 + k,
      max_tokens: 10 + k,
      return_token_ids: true,
    })),
  );
  const solo: any[] = [];
  for (const b of bodies) solo.push(await s.client.chat.completions.create(b as any));
  const together = (await Promise.all(bodies.map((b) => s.client.chat.completions.create(b as any)))) as any[];
  const pick = (r: any) => r.choices.map((c: any) => [c.token_ids, c.message.content, c.finish_reason]);
  expect(together.map(pick)).toEqual(solo.map(pick));
  expect(new Set(solo.map((r) => JSON.stringify(r.choices[0].token_ids))).size).toBeGreaterThan(4);
}, 120_000);

test("request tools are rendered into the prompt; an assistant's tool_calls as Qwen writes them", async () => {
  const tools = [{ type: 'function' as const, function: { name: 'zoom_in', description: 'Zoom into a cell.', parameters: { type: 'object', properties: { cell: { type: 'string' } } } } }];
  const r = (await s.client.chat.completions.create({
    model: 'tiny-qwen',
    messages: [
      { role: 'user', content: 'Look closer.' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'zoom_in', arguments: '{"cell": "B3"}' } }] },
      { role: 'tool', tool_call_id: 'c1', content: 'zoomed' },
    ],
    tools,
    temperature: 0,
    max_tokens: 4,
    return_token_ids: true,
  } as any)) as any;
  const prompt = tok.decode(r.prompt_token_ids);
  expect(prompt).toContain('# Tools');
  expect(prompt).toContain('"name": "zoom_in"');
  expect(prompt).toContain('<|im_start|>assistant\n<tool_call>\n{"name": "zoom_in", "arguments": {"cell": "B3"}}\n</tool_call><|im_end|>');
  expect(prompt).toContain('<tool_response>\nzoomed\n</tool_response>');
  // tool_choice 'none': no tools block.
  const none = (await s.client.chat.completions.create({ model: 'tiny-qwen', messages: [{ role: 'user', content: 'x' }], tools, tool_choice: 'none', max_tokens: 1, return_token_ids: true } as any)) as any;
  expect(tok.decode(none.prompt_token_ids)).not.toContain('# Tools');
}, 60_000);

describe('errors are typed 4xx naming the field', () => {
  const create = (body: Record<string, unknown>) => s.client.chat.completions.create({ model: 'tiny-qwen', max_tokens: 2, ...body } as any);
  const user = (url: string) => [{ role: 'user', content: [{ type: 'text', text: 'x' }, { type: 'image_url', image_url: { url } }] }];

  test('a bad image, a remote URL, an image too small for smart_resize', async () => {
    await expect(create({ messages: user('data:image/png;base64,AAAA') })).rejects.toMatchObject({ status: 400, param: 'messages[0].content[1]', code: 'invalid_image' });
    await expect(create({ messages: user('https://example.com/x.png') })).rejects.toMatchObject({ status: 400, param: 'messages[0].content[1]', code: 'remote_image_url' });
    const tiny = await pngDataUri(rgbImage(new Rng(1), 8, 8));
    await expect(create({ messages: user(tiny) })).rejects.toMatchObject({ status: 400, param: 'messages[0].content[1]', code: 'invalid_image_size' });
  });

  test('an unknown model is a 404 on model', async () => {
    await expect(create({ model: 'qwen-72b', messages: [{ role: 'user', content: 'x' }] })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(create({ model: 'qwen-72b', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({ status: 404, param: 'model' });
  });

  test('a non-zero stream counter resumes the stream: the request samples what an in-process QwenSession add with that counter samples', async () => {
    const messages = [{ role: 'user', content: 'Findings?' }];
    const key = { seed: 1, step: 0, prompt_index: 0, sample_index: 0 };
    const r = (await create({ messages, temperature: 1, max_tokens: 8, return_token_ids: true, medgym_sample_key: { ...key, counter: 3 } })) as any;
    const r0 = (await create({ messages, temperature: 1, max_tokens: 8, return_token_ids: true, medgym_sample_key: { ...key, counter: 0 } })) as any;
    const session = model.createSession();
    try {
      const [id] = await session.add([{ ids: r.prompt_token_ids as number[] }], [{ seed: 1, step: 0, promptIndex: 0, sampleIndex: 0, counter: 3 }]);
      const [g] = await session.generate([id], { maxNewTokens: 8, temperature: 1, stopTokens: endIds(), bannedTokens: bannedIds() });
      expect(r.choices[0].token_ids).toEqual(Array.from(g.tokens));
    } finally {
      session.dispose();
    }
    expect(r.choices[0].token_ids).not.toEqual(r0.choices[0].token_ids);
  });

  test('tool_calls arguments that are not JSON; an image in an assistant message; ids outside the vocabulary', async () => {
    const bad = [
      { role: 'user', content: 'x' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{oops' } }] },
    ];
    await expect(create({ messages: bad })).rejects.toMatchObject({ status: 400, param: 'messages[1].tool_calls[0].function.arguments' });
    const img = await pngDataUri(rgbImage(new Rng(2), 32, 32));
    await expect(create({ messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: [{ type: 'image_url', image_url: { url: img } }] }] })).rejects.toMatchObject({ status: 400, param: 'messages[1].content[0]' });
    await expect(create({ messages: [{ role: 'user', content: 'x' }], stop_token_ids: [512] })).rejects.toMatchObject({ status: 400, param: 'stop_token_ids[0]' });
    await expect(create({ messages: [{ role: 'user', content: 'x' }], logit_bias: { '600': -100 } })).rejects.toMatchObject({ status: 400, param: 'logit_bias.600' });
  });
});
