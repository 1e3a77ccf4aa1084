// `medgym serve` through the official `openai` client: the model list, completions (plain and
// streamed), images as data URIs, stop strings, n > 1, and token-equality with in-process
// NativePolicy generation of the same rendered tokens and stream key — over two turns too.
import type OpenAI from 'openai';
import { NativePolicy } from '../../src/policy';
import { renderMedgymChat } from '../../src/policy/openai/medgym_chat';
import type { ChatMessage } from '../../src/policy/openai/types';
import { encode, IMAGE_ID } from '../../src/tokenizer';
import type { ViewImage } from '../../src/tools/image';
import { Rng } from '../helpers/random';
import { pngDataUri, randomViewOf, useOpenAIServers, writeCheckpoint, type Served } from './openai_harness';

/* eslint-disable @typescript-eslint/no-explicit-any -- medgym's extensions are not in the client's types */

describe('medgym serve with the openai client', () => {
  const start = useOpenAIServers();
  const rng = new Rng(21);
  const view = randomViewOf(rng);
  const toolView = randomViewOf(rng);
  let s: Served;
  let ref: NativePolicy;
  let uri: string;
  let toolUri: string;
  beforeAll(async () => {
    const file = await writeCheckpoint(1);
    s = await start(file);
    ref = await NativePolicy.load(file);
    uri = await pngDataUri(view);
    toolUri = await pngDataUri(toolView);
  });
  afterAll(() => ref.dispose());

  const prompt = (): ChatMessage[] => [
    { role: 'system', content: 'You read scans.' },
    { role: 'user', content: [{ type: 'image_url', image_url: { url: uri } }, { type: 'text', text: 'Lesion? A) yes B) no' }] },
  ];
  const create = (body: Record<string, unknown>): Promise<any> =>
    s.client.chat.completions.create({ model: 'tiny-vlm', messages: prompt() as any, ...body } as any);

  /** In-process: the same ids, views and key through one NativePolicy session. */
  async function inProcess(tokens: number[], images: ViewImage[], key: Record<string, number>, opts: Record<string, unknown>): Promise<number[]> {
    const session = ref.createSession();
    const [id] = await session.add([{ tokens, images, key }]);
    const [out] = await session.generate([id], opts);
    session.dispose();
    return Array.from(out.tokens);
  }

  test('models.list and models.retrieve: the entry with its medgym block', async () => {
    const list = await s.client.models.list();
    expect(list.data.map((m) => m.id)).toEqual(['tiny-vlm']);
    const m = (await s.client.models.retrieve('tiny-vlm')) as any;
    expect(m.owned_by).toBe('medgym');
    expect(m.medgym).toEqual({ protocol: 'medgym-vlm', image_size: 16, channels: 3, image_tokens: 4, max_seq: 256, vocab_size: 268 });
  });

  test('greedy: the streamed text equals the non-streamed text; usage chunk with include_usage', async () => {
    const plain = await create({ temperature: 0, max_tokens: 30 });
    expect(plain.object).toBe('chat.completion');
    expect(plain.choices[0].message.role).toBe('assistant');
    const stream = (await create({ temperature: 0, max_tokens: 30, stream: true, stream_options: { include_usage: true } })) as AsyncIterable<OpenAI.ChatCompletionChunk>;
    let text = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const c of stream) {
      for (const ch of c.choices) {
        text += ch.delta.content ?? '';
        finish = ch.finish_reason ?? finish;
      }
      if (c.usage) usage = c.usage;
    }
    expect(text.length).toBeGreaterThan(0);
    expect(text).toBe(plain.choices[0].message.content ?? '');
    expect(finish).toBe(plain.choices[0].finish_reason);
    expect(usage).toEqual(plain.usage);
    expect(plain.usage.prompt_tokens).toBe(renderMedgymChat(prompt()).tokens.length + 3); // the view: 4 positions for one id
  });

  test('a medgym_sample_key gives exactly the tokens of in-process generation (sampled, n = 3 forks)', async () => {
    const key = { seed: 7, step: 1, prompt_index: 2, sample_index: 4, counter: 5 };
    const r = await create({ temperature: 1, max_tokens: 20, n: 3, return_token_ids: true, medgym_sample_key: key });
    const rendered = renderMedgymChat(prompt());
    expect(r.prompt_token_ids).toEqual(rendered.tokens);
    expect(r.choices).toHaveLength(3);
    for (const c of r.choices) {
      const want = await inProcess(rendered.tokens, [view], { seed: 7, step: 1, promptIndex: 2, sampleIndex: 4 + c.index, counter: 5 }, { maxNewTokens: 20, temperature: 1 });
      expect(c.token_ids).toEqual(want);
      expect(c.medgym_finish_reason).toBe(want.length === 20 ? 'max_new_tokens' : 'stop_token');
    }
    expect(new Set(r.choices.map((c: any) => JSON.stringify(c.token_ids))).size).toBe(3);
  });

  test('logprobs: each sampled id with its log-prob, bit-equal to in-process generation; streamed too; top_logprobs > 0 is a 400', async () => {
    const key = { seed: 4, step: 0, prompt_index: 0, sample_index: 0, counter: 0 };
    const r = await create({ temperature: 0.7, max_tokens: 12, return_token_ids: true, logprobs: true, medgym_sample_key: key });
    const session = ref.createSession();
    const [id] = await session.add([{ tokens: renderMedgymChat(prompt()).tokens, images: [view], key: { seed: 4, step: 0, promptIndex: 0, sampleIndex: 0 } }]);
    const [want] = await session.generate([id], { maxNewTokens: 12, temperature: 0.7 });
    session.dispose();
    const content = r.choices[0].logprobs.content as { token: string; logprob: number; bytes: number[]; top_logprobs: unknown[] }[];
    expect(r.choices[0].token_ids).toEqual(Array.from(want.tokens));
    expect(content.map((e) => e.logprob)).toEqual(Array.from(want.logp));
    expect(content.every((e, k) => e.top_logprobs.length === 0 && (want.tokens[k] >= 256 || e.bytes[0] === want.tokens[k]))).toBe(true);
    const stream = (await s.client.chat.completions.create({ model: 'tiny-vlm', messages: prompt() as any, temperature: 0.7, max_tokens: 12, logprobs: true, stream: true, medgym_sample_key: key } as any)) as any;
    const streamed: number[] = [];
    for await (const ch of stream) for (const c of ch.choices) for (const e of c.logprobs?.content ?? []) streamed.push(e.logprob);
    expect(streamed).toEqual(Array.from(want.logp));
    await expect(create({ logprobs: true, top_logprobs: 3 })).rejects.toMatchObject({ status: 400, param: 'top_logprobs' });
  });

  test('defaults: seed → {seed, step 0, prompt_index 0, sample_index 0, counter 0}; the same request twice is the same', async () => {
    const a = await create({ temperature: 1, max_tokens: 16, seed: 11, return_token_ids: true });
    const b = await create({ temperature: 1, max_tokens: 16, seed: 11, return_token_ids: true });
    expect(a.choices[0].token_ids).toEqual(b.choices[0].token_ids);
    const want = await inProcess(renderMedgymChat(prompt()).tokens, [view], { seed: 11, step: 0, promptIndex: 0, sampleIndex: 0 }, { maxNewTokens: 16, temperature: 1 });
    expect(a.choices[0].token_ids).toEqual(want);
  });

  test('two turns: turn 2 with the turn-1 ids and counter = their count equals one in-process session going turn by turn', async () => {
    const key = { seed: 3, step: 0, prompt_index: 1, sample_index: 0 };
    const t1 = await create({ temperature: 1, max_tokens: 12, return_token_ids: true, medgym_sample_key: { ...key, counter: 0 } });
    const ids1: number[] = t1.choices[0].token_ids;
    const messages = [
      ...prompt(),
      { role: 'assistant', content: t1.choices[0].message.content, token_ids: ids1 },
      { role: 'tool', tool_call_id: 'call_0', content: [{ type: 'text', text: 'zoomed' }, { type: 'image_url', image_url: { url: toolUri } }] },
    ];
    const t2 = (await s.client.chat.completions.create({
      model: 'tiny-vlm', messages, temperature: 1, max_tokens: 12, return_token_ids: true, medgym_sample_key: { ...key, counter: ids1.length },
    } as any)) as any;

    const session = ref.createSession();
    const opts = { maxNewTokens: 12, temperature: 1 };
    const [id] = await session.add([{ tokens: renderMedgymChat(prompt()).tokens, images: [view], key: { seed: 3, step: 0, promptIndex: 1, sampleIndex: 0 } }]);
    const [o1] = await session.generate([id], opts);
    expect(ids1).toEqual(Array.from(o1.tokens));
    await session.append([{ id, input: { tokens: [...encode('\n<tool_response>zoomed'), IMAGE_ID, ...encode('</tool_response>\nassistant: ')], images: [toolView] } }]);
    expect(t2.prompt_token_ids).toEqual(Array.from(session.tokens(id)));
    const [o2] = await session.generate([id], opts);
    session.dispose();
    expect(t2.choices[0].token_ids).toEqual(Array.from(o2.tokens));
  });

  test('a max_tokens past the context: every position filled, max_seq as in-process; stop_token_ids [] stops nothing', async () => {
    const r = await create({ temperature: 1, max_tokens: 5000, seed: 2, stop_token_ids: [], return_token_ids: true });
    const rendered = renderMedgymChat(prompt());
    const want = await inProcess(rendered.tokens, [view], { seed: 2, step: 0, promptIndex: 0, sampleIndex: 0 }, { maxNewTokens: 5000, temperature: 1, stopTokens: [] });
    expect(r.choices[0].token_ids).toEqual(want);
    expect(want).toHaveLength(256 - r.usage.prompt_tokens);
    expect(r.choices[0].finish_reason).toBe('length');
    expect(r.choices[0].medgym_finish_reason).toBe('max_seq');
  });

  test('stop strings: the text ends before the first match, streamed and not', async () => {
    const full = (await create({ temperature: 0, max_tokens: 30 })).choices[0].message.content as string;
    const stop = full.slice(6, 8);
    const at = full.indexOf(stop);
    const r = await create({ temperature: 0, max_tokens: 30, stop: [stop, 'never-there'] });
    expect(r.choices[0].message.content).toBe(full.slice(0, at));
    expect(r.choices[0].finish_reason).toBe('stop');
    expect(r.choices[0].medgym_finish_reason).toBe('stop_string');
    let streamed = '';
    for await (const c of (await create({ temperature: 0, max_tokens: 30, stop, stream: true })) as AsyncIterable<OpenAI.ChatCompletionChunk>) streamed += c.choices[0]?.delta.content ?? '';
    expect(streamed).toBe(full.slice(0, at));
  });

  test('max_tokens: finish_reason length; logit_bias -100 bans a token', async () => {
    const r = await create({ temperature: 0, max_tokens: 5, return_token_ids: true });
    expect(r.choices[0].token_ids).toHaveLength(5);
    expect(r.choices[0].finish_reason).toBe('length');
    const first = r.choices[0].token_ids[0];
    const banned = await create({ temperature: 0, max_tokens: 5, return_token_ids: true, logit_bias: { [String(first)]: -100 } });
    expect(banned.choices[0].token_ids[0]).not.toBe(first);
  });

  test('images: a grey PNG is replicated to the 3 channels; a JPEG is accepted', async () => {
    const grey = randomViewOf(rng, 16, 1);
    const messages = [{ role: 'user', content: [{ type: 'image_url', image_url: { url: await pngDataUri(grey) } }, { type: 'text', text: 'ok?' }] }];
    const r = (await s.client.chat.completions.create({ model: 'tiny-vlm', messages, temperature: 0, max_tokens: 10, return_token_ids: true } as any)) as any;
    const want = await inProcess(renderMedgymChat(messages as ChatMessage[]).tokens, [grey], { seed: 0, step: 0, promptIndex: 0, sampleIndex: 0 }, { maxNewTokens: 10, temperature: 0 });
    expect(r.choices[0].token_ids).toEqual(want);
    const jpeg = `data:image/jpeg;base64,${(await (await import('sharp')).default(Buffer.from(view.data), { raw: { width: 16, height: 16, channels: 3 } }).jpeg().toBuffer()).toString('base64')}`;
    const j = (await s.client.chat.completions.create({ model: 'tiny-vlm', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: jpeg } }] }], max_tokens: 3 } as any)) as any;
    expect(j.choices[0].message.role).toBe('assistant');
  });
});
