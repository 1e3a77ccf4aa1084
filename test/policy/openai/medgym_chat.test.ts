// renderMedgymChat and its inverse: real env episodes (a zoom, crop_multi with several views, two calls
// in one turn, a turn with neither call nor answer, an answer) turned into chat messages render back to
// exactly the env's ids; bad messages are refused naming the message.
import { makeVec } from '../../../src/env';
import { assertRendersTo, envPromptMessages, envResponseMessages, MedgymChatError, renderMedgymChat, sampledTurnMessage, type ChatMessage } from '../../../src/policy/openai';
import { GENERATOR_ITEMS } from '../../../src/rollout/items';
import { decode, encode, IMAGE_ID } from '../../../src/tokenizer';
import { DEFAULT_ENV_ID } from '../../../src/train/config';

const call = (name: string, args: unknown): string => `<tool_call>${JSON.stringify({ name, arguments: args })}</tool_call>`;
const urls = (n: number, tag: string): string[] => Array.from({ length: n }, (_, k) => `data:image/png;base64,${tag}${k}`);

/** Plays `actions` on a fresh episode; returns the env's ids and the chat messages built from them turn by turn. */
async function episode(actions: string[], systemPrompt?: string) {
  const vec = makeVec(DEFAULT_ENV_ID, 1, systemPrompt === undefined ? {} : { systemPrompt });
  try {
    const env = vec.envs[0];
    const { observation } = await env.reset({ options: { index: GENERATOR_ITEMS.evalItems(1)[0] } });
    const held = [...observation.tokens];
    let images = observation.images.length;
    const messages = envPromptMessages(observation.tokens, urls(images, 'p'));
    const counts: number[] = [];
    for (const [t, a] of actions.entries()) {
      assertRendersTo(messages, held, images, `turn ${t}`);
      const ids = encode(a);
      held.push(...ids);
      messages.push(sampledTurnMessage(ids));
      const r = await env.step(ids);
      if (r.terminated || r.truncated) return { held, messages, counts, done: true };
      held.push(...r.observation.tokens);
      images += r.observation.images.length;
      counts.push(r.observation.images.length);
      messages.push(...envResponseMessages(r.observation.tokens, urls(r.observation.images.length, `t${t}-`)));
    }
    assertRendersTo(messages, held, images, 'end');
    return { held, messages, counts, done: false };
  } finally {
    vec.close();
  }
}

test('an episode with crop_multi, two calls in one turn and an error response renders back token-exactly', async () => {
  const ep = await episode([
    call('zoom_in', { cell: 'B3' }),
    '<think>two regions</think>' + call('crop_multi', { bboxes: [{ cell: 'A1' }, { cell: 'C2' }, { cell: 'D4' }] }),
    call('rotate', { angle: 90 }) + call('flip', { axis: 'horizontal' }),
    'I am not sure yet', // neither a call nor an answer: an error <tool_response> without any call
  ]);
  expect(ep.done).toBe(false);
  expect(ep.counts).toEqual([1, 3, 2, 0]);
  const r = renderMedgymChat(ep.messages);
  expect(r.tokens).toEqual(ep.held);
  expect(r.tokens.filter((t) => t === IMAGE_ID)).toHaveLength(r.imageUrls.length);
  expect(r.imageUrls).toEqual([...urls(1, 'p'), ...urls(1, 't0-'), ...urls(3, 't1-'), ...urls(2, 't2-')]);
  const tools = ep.messages.filter((m) => m.role === 'tool');
  expect(tools).toHaveLength(1 + 1 + 2 + 1);
  expect(JSON.stringify(tools.at(-1))).toContain('error: no tool call or answer found');
  expect(decode(r.tokens).endsWith('</tool_response>\nassistant: ')).toBe(true);
});

test('an answered episode, and an empty system prompt, render back token-exactly up to the answer', async () => {
  const ep = await episode([call('zoom_in', { cell: 'A1', span: 2 }), '<answer>A</answer><|eos|>'], '');
  expect(ep.done).toBe(true);
  // The answer ends the episode: what the server saw before it is the transcript up to the last prompt.
  const before = ep.messages.slice(0, -1);
  expect(renderMedgymChat(before).tokens).toEqual(ep.held.slice(0, ep.held.length - encode('<answer>A</answer><|eos|>').length));
  expect(decode(renderMedgymChat(before).tokens).startsWith('<|bos|>\nuser: <|image|>\n')).toBe(true);
});

test('the rendering rules: images first in a user turn, assistant text + tool calls, token_ids verbatim', () => {
  const img = (url: string) => ({ type: 'image_url' as const, image_url: { url } });
  const msgs: ChatMessage[] = [
    { role: 'system', content: [{ type: 'text', text: 'sys ' }, { type: 'text', text: 'text' }] },
    { role: 'user', content: [{ type: 'text', text: 'Q?' }, img('u1'), img('u2')] },
    { role: 'assistant', content: 'hm', tool_calls: [{ id: 'c', type: 'function', function: { name: 'zoom_in', arguments: '{"cell": "B3"}' } }] },
    { role: 'tool', tool_call_id: 'c', content: [{ type: 'text', text: 'zoomed' }, img('t1')] },
    { role: 'assistant', content: 'ignored', token_ids: [65, 257] },
    { role: 'user', content: [img('u3')] },
  ];
  const r = renderMedgymChat(msgs);
  expect(decode(r.tokens)).toBe(
    '<|bos|>sys text\nuser: <|image|><|image|>\nQ?\nassistant: hm<tool_call>{"name":"zoom_in","arguments":{"cell":"B3"}}</tool_call>' +
      '\n<tool_response>zoomed<|image|></tool_response>\nassistant: A<|eos|>\nuser: <|image|>\nassistant: ',
  );
  expect(r.imageUrls).toEqual(['u1', 'u2', 't1', 'u3']);
  // No system message: <|bos|> then the first turn.
  expect(decode(renderMedgymChat([{ role: 'user', content: 'hi' }]).tokens)).toBe('<|bos|>\nuser: \nhi\nassistant: ');
});

test('bad messages are refused with MedgymChatError naming the message', () => {
  const bad: [unknown, RegExp][] = [
    [[], /messages: expected a non-empty array/],
    [[{ role: 'user', content: 'a' }, { role: 'system', content: 's' }], /messages\[1\]: a system message may only come first/],
    [[{ role: 'robot', content: 'a' }], /messages\[0\]\.role: expected system, user, assistant or tool but received "robot"/],
    [[{ role: 'user', content: [{ type: 'audio' }] }], /messages\[0\]\.content\[0\]: expected/],
    [[{ role: 'user', content: 'see <|image|>' }], /messages\[0\]\.content: the text spells <\|image\|>/],
    [[{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }], /messages\[1\]: the last message must be user or tool/],
    [[{ role: 'user', content: 'a' }, { role: 'assistant', content: null, token_ids: [1, 999] }, { role: 'user', content: 'c' }], /messages\[1\]\.token_ids\[1\]: expected a token id in \[0, 268\)/],
    [[{ role: 'user', content: 'a' }, { role: 'assistant', content: null, tool_calls: [{ id: 'x', type: 'function', function: { name: 'zoom_in', arguments: '{oops' } }] }, { role: 'tool', content: 'r' }], /messages\[1\]\.tool_calls\[0\]\.function\.arguments: expected JSON text/],
    [[{ role: 'system', content: [{ type: 'image_url', image_url: { url: 'x' } }] }], /messages\[0\]\.content: a system message holds no images/],
  ];
  for (const [msgs, re] of bad) {
    let err: unknown;
    try {
      renderMedgymChat(msgs as ChatMessage[]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MedgymChatError);
    expect((err as Error).message).toMatch(re);
  }
});

test('the exactness guard names the first difference', () => {
  const msgs: ChatMessage[] = [{ role: 'user', content: 'abc' }];
  const held = encode('<|bos|>\nuser: \nabd\nassistant: ');
  expect(() => assertRendersTo(msgs, held, 0, 'sequence 3')).toThrow(/sequence 3: .*first difference at id 11.*refusing to send/);
  expect(() => assertRendersTo(msgs, renderMedgymChat(msgs).tokens, 1, 'x')).toThrow(/0 images.*holds .* \(1 images\)/);
});
