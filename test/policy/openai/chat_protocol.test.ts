// HttpPolicy, 'chat' protocol, against a fake OpenAI server: whole env episodes through rollout() with
// OpenAI tool calls and with text tool calls; the views arrive as PNG data URIs of the env's pixels;
// tool results go back matched to their calls; evaluation without tools sends no tools.
import sharp from 'sharp';
import { makeVec } from '../../../src/env';
import { QWEN_SYSTEM_PROMPT } from '../../../src/models/qwen2_vl/protocol';
import { HttpPolicy, requestSeed, type ChatCompletionRequest, type ChatContentPart, type ChatMessage } from '../../../src/policy/openai';
import { rollout } from '../../../src/rollout';
import { GENERATOR_ITEMS } from '../../../src/rollout/items';
import { decode } from '../../../src/tokenizer';
import type { ViewImage } from '../../../src/tools/image';
import { DEFAULT_ENV_ID } from '../../../src/train/config';
import { chats, completion, toolCall, useFake } from './fake_server';

const start = useFake();

const imageUrls = (m: ChatMessage): string[] => (Array.isArray(m.content) ? m.content.filter((p): p is Extract<ChatContentPart, { type: 'image_url' }> => p.type === 'image_url').map((p) => p.image_url.url) : []);
const textOf = (m: ChatMessage): string => (typeof m.content === 'string' ? m.content : (m.content ?? []).filter((p) => p.type === 'text').map((p) => (p as { text: string }).text).join(''));

/** Decodes a PNG data URI and checks it is exactly `view` (size, channels, pixels). */
async function expectSamePixels(url: string, view: ViewImage): Promise<void> {
  expect(url.startsWith('data:image/png;base64,')).toBe(true);
  const png = Buffer.from(url.slice('data:image/png;base64,'.length), 'base64');
  const meta = await sharp(png).metadata();
  expect([meta.format, meta.width, meta.height, meta.channels]).toEqual(['png', view.width, view.height, view.channels]); // grey views stay grey PNGs
  // sharp decodes to sRGB unless told otherwise.
  const data = await (view.channels === 1 ? sharp(png).toColourspace('b-w') : sharp(png)).raw().toBuffer();
  expect(Buffer.compare(data, Buffer.from(view.data))).toBe(0);
}

async function run(policy: HttpPolicy, o: { groupSize?: number; noTools?: boolean; viewChannels?: 1 | 3 } = {}) {
  const G = o.groupSize ?? 1;
  const vec = makeVec(DEFAULT_ENV_ID, G, { maxTurns: 4, imageTokens: policy.imageTokens, maxTotalTokens: policy.maxSeq, maxNewTokensPerTurn: 1 << 20, ...(o.viewChannels ? { viewChannels: o.viewChannels } : {}) });
  try {
    return await rollout(policy, vec, { seed: 5, step: 2, items: GENERATOR_ITEMS.evalItems(1), groupSize: G, temperature: 0.7, maxNewTokensPerTurn: 64, noTools: o.noTools });
  } finally {
    vec.close();
  }
}

test("OpenAI tool calls: an episode of zoom, crop_multi (2 views) and an answer; the RGB views are the env's pixels", async () => {
  const fake = await start({
    chat: (_, n) =>
      [
        { body: completion('m', { content: 'Let me zoom.', tool_calls: [toolCall('c1', 'zoom_in', { cell: 'B3' })] }, {}, 'tool_calls') },
        { body: completion('m', { content: null, tool_calls: [toolCall('c2', 'crop_multi', { bboxes: [{ cell: 'A1' }, { cell: 'D4' }] }), toolCall('c3', 'view_original', {})] }, {}, 'tool_calls') },
        { body: completion('m', { content: 'It is <answer>A</answer>' }) },
      ][n],
  });
  const policy = await HttpPolicy.connect(fake.url, 'm', { apiKey: 'sk-test' });
  try {
    expect(policy.protocol).toBe('chat');
    expect([policy.imageTokens, policy.maxSeq]).toEqual([256, 32768]);
    const [t] = await run(policy, { viewChannels: 3 });
    expect(t.images[0].channels).toBe(3);
    expect(t.turns).toBe(3);
    expect(t.toolCalls).toBe(3);
    expect(t.toolErrors).toBe(0);
    expect(t.answerStatus).toBe('ok');
    expect(t.images).toHaveLength(1 + 1 + 2 + 1);
    expect(decode(t.tokens)).toContain('assistant: <think>Let me zoom.</think><tool_call>{"name":"zoom_in","arguments":{"cell":"B3"}}</tool_call>');
    expect(Array.from(t.oldLogp).every((x) => x === 0)).toBe(true);

    const [r0, r1, r2] = chats(fake);
    expect(fake.requests[0].headers.authorization).toBe('Bearer sk-test');
    expect(r0.model).toBe('m');
    expect(r0.messages[0]).toEqual({ role: 'system', content: QWEN_SYSTEM_PROMPT });
    expect(r0.tools!.map((x) => x.function.name)).toEqual(expect.arrayContaining(['zoom_in', 'crop_multi', 'window', 'view_original']));
    expect(r0.tool_choice).toBeUndefined();
    expect(r0).toMatchObject({ max_tokens: 64, temperature: 0.7, top_p: 1 });
    expect(Number.isInteger(r0.seed) && r0.seed! >= 0 && r0.seed! < 2 ** 31).toBe(true);
    expect(r1.seed).not.toBe(r0.seed); // the counter moved on
    await expectSamePixels(imageUrls(r0.messages[1])[0], t.images[0]);
    expect(textOf(r0.messages[1])).toContain('Image size:');

    // Turn 2 context: assistant with tool_calls, the tool message for c1, then the view in a user message.
    const m1 = r1.messages.slice(2);
    expect(m1[0]).toMatchObject({ role: 'assistant', content: 'Let me zoom.', tool_calls: [{ id: 'c1' }] });
    expect(m1[1]).toMatchObject({ role: 'tool', tool_call_id: 'c1' });
    expect(textOf(m1[1])).toMatch(/^zoom_in /);
    expect(m1[2].role).toBe('user');
    await expectSamePixels(imageUrls(m1[2])[0], t.images[1]);
    // Turn 3 context: two tool messages in call order, then the three views in one user message.
    const m2 = r2.messages.slice(5);
    expect(m2.map((m) => [m.role, m.tool_call_id])).toEqual([['assistant', undefined], ['tool', 'c2'], ['tool', 'c3'], ['user', undefined]]);
    expect(textOf(m2[1])).toMatch(/^crop_multi/);
    const views = imageUrls(m2[3]);
    expect(views).toHaveLength(3);
    for (const [k, u] of views.entries()) await expectSamePixels(u, t.images[2 + k]);
  } finally {
    policy.dispose();
  }
});

test('text tool calls: tools in the system text, results as one user message of <tool_response> blocks; grey views as 1-channel PNGs', async () => {
  const fake = await start({
    chat: (_, n) =>
      [
        { body: completion('m', { content: 'Zooming.\n<tool_call>\n{"name": "zoom_in", "arguments": {"cell": "C2"}}\n</tool_call>' }) },
        { body: completion('m', { content: 'nothing useful' }) },
        { body: completion('m', { content: '<answer>B</answer>' }) },
      ][n],
  });
  const policy = await HttpPolicy.connect(fake.url + '/', 'm', { toolFormat: 'text', systemPrompt: 'Be brief.' });
  try {
    const [t] = await run(policy, { viewChannels: 1 });
    expect([t.turns, t.toolCalls, t.answerStatus]).toEqual([3, 1, 'ok']);
    const [r0, r1, r2] = chats(fake);
    expect(r0.tools).toBeUndefined();
    expect(textOf(r0.messages[0])).toMatch(/^Be brief\.\n\n# Tools\n/);
    expect(textOf(r0.messages[0])).toContain('"name": "crop_multi"');
    await expectSamePixels(imageUrls(r0.messages[1])[0], t.images[0]);
    const [assistant, results] = r1.messages.slice(2);
    expect(assistant).toEqual({ role: 'assistant', content: 'Zooming.\n<tool_call>\n{"name": "zoom_in", "arguments": {"cell": "C2"}}\n</tool_call>' });
    expect(results.role).toBe('user');
    expect(textOf(results)).toMatch(/^<tool_response>\nzoom_in .*\n<\/tool_response>$/);
    await expectSamePixels(imageUrls(results)[0], t.images[1]);
    // A turn with neither call nor answer: the env's error comes back as a <tool_response> block too.
    expect(textOf(r2.messages.at(-1)!)).toMatch(/^<tool_response>\nerror: no tool call or answer found/);
  } finally {
    policy.dispose();
  }
});

test('without tools: no tools, no tool text; a call the server returns anyway never reaches the env', async () => {
  for (const toolFormat of ['openai', 'text'] as const) {
    const fake = await start({
      chat: (_, n) =>
        [
          { body: completion('m', { content: '<tool_call>{"name": "zoom_in", "arguments": {"cell": "A1"}}</tool_call>', tool_calls: [toolCall('x', 'zoom_in', { cell: 'B2' })] }) },
          { body: completion('m', { content: '<answer>C</answer>' }) },
        ][n],
    });
    const policy = await HttpPolicy.connect(fake.url, 'm', { toolFormat });
    try {
      const [t] = await run(policy, { noTools: true });
      expect([t.turns, t.toolCalls]).toEqual([2, 0]);
      for (const r of chats(fake)) {
        expect(r.tools).toBeUndefined();
        expect(r.tool_choice).toBeUndefined();
        expect(textOf(r.messages[0])).toBe(QWEN_SYSTEM_PROMPT);
      }
      expect(chats(fake)[1].messages.some((m) => m.role === 'tool')).toBe(false);
    } finally {
      policy.dispose();
    }
  }
});

test('a group forks the prompt: every sample has its own seed, stable for the same key', async () => {
  const fake = await start({ chat: () => ({ body: completion('m', { content: '<answer>A</answer>' }) }) });
  const policy = await HttpPolicy.connect(fake.url, 'm');
  try {
    const ts = await run(policy, { groupSize: 3 });
    expect(ts.map((t) => t.sampleIndex)).toEqual([0, 1, 2]);
    const seeds = chats(fake).map((r: ChatCompletionRequest) => r.seed);
    expect(new Set(seeds).size).toBe(3);
    const want = [0, 1, 2].map((g) => requestSeed({ key: { seed: 5, step: 2, promptIndex: 0, sampleIndex: g }, counter: 0 }));
    expect([...seeds].sort()).toEqual([...want].sort());
  } finally {
    policy.dispose();
  }
});
