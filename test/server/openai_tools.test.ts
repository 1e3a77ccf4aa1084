// Tools mode of `medgym serve`: <tool_call>{…}</tool_call> spans become OpenAI tool_calls (the parser,
// then a model overfit to write one call, through the openai client, plain and streamed); and the
// choice text's streaming rules (stop strings, UTF-8 held back until whole).
import type OpenAI from 'openai';
import { renderMedgymChat } from '../../src/policy/openai/medgym_chat';
import { encode } from '../../src/tokenizer';
import { ChoiceText } from '../../src/server/openai/choice_text';
import { parseToolCalls } from '../../src/server/openai/tool_calls';
import { useOpenAIServers, writeCheckpoint, type Served } from './openai_harness';

/* eslint-disable @typescript-eslint/no-explicit-any -- medgym's extensions are not in the client's types */

describe('parseToolCalls', () => {
  test('calls become tool_calls with JSON-text arguments; the rest stays content', () => {
    const r = parseToolCalls('<think>look</think><tool_call>{"name": "zoom_in", "arguments": {"cell": "B3"}}</tool_call>', 'call_x_0');
    expect(r.content).toBe('<think>look</think>');
    expect(r.calls).toEqual([{ id: 'call_x_0_0', type: 'function', function: { name: 'zoom_in', arguments: '{"cell":"B3"}' } }]);
  });
  test('several calls; arguments given as a JSON string or omitted', () => {
    const r = parseToolCalls('<tool_call>{"name":"a","arguments":"{\\"k\\":1}"}</tool_call> and <tool_call>{"name":"view_original"}</tool_call>', 'c');
    expect(r.calls.map((c) => c.function)).toEqual([{ name: 'a', arguments: '{"k":1}' }, { name: 'view_original', arguments: '{}' }]);
    expect(r.content).toBe(' and ');
  });
  test('malformed, nameless or unterminated spans stay text', () => {
    for (const t of ['<tool_call>{"name": zoom}</tool_call>', '<tool_call>{"arguments": {}}</tool_call>', '<tool_call>[1]</tool_call>', '<tool_call>{"name":"a"}', '<tool_call>{"name":"a","arguments":"{bad"}</tool_call>']) {
      expect(parseToolCalls(t, 'c')).toEqual({ content: t, calls: [] });
    }
  });
});

describe('ChoiceText', () => {
  test('a stop string cuts the text before it; the streamed pieces never show its start', () => {
    const t = new ChoiceText(['STOP'], false);
    const pieces: string[] = [];
    let stopped = false;
    for (const id of encode('abc ST xyz STOP more')) {
      if (stopped) break;
      stopped = t.push([id]);
      pieces.push(t.delta());
      expect(pieces.join('')).not.toMatch(/ST$|S$/);
    }
    expect(stopped).toBe(true);
    expect(t.text).toBe('abc ST xyz ');
    expect(pieces.join('') + t.rest(t.text)).toBe('abc ST xyz ');
  });
  test('half a UTF-8 character is held back until it is whole', () => {
    const t = new ChoiceText([], false);
    const euro = encode('€'); // 3 bytes
    t.push([euro[0]]);
    expect(t.delta()).toBe('');
    t.push([euro[1]]);
    expect(t.delta()).toBe('');
    t.push([euro[2], 65]);
    expect(t.delta()).toBe('€A');
  });
  test('tools mode holds the text from <tool_call> on', () => {
    const t = new ChoiceText([], true);
    t.push(encode('ok <tool_call>{"name"'));
    expect(t.delta()).toBe('ok ');
    expect(t.delta()).toBe('');
  });
});

describe('medgym serve: tool calls from a model that writes one', () => {
  const start = useOpenAIServers();
  const messages = [
    { role: 'system', content: 'Use tools.' },
    { role: 'user', content: 'Where is the lesion?' },
  ];
  const target = encode('<tool_call>{"name": "zoom_in", "arguments": {"cell": "B3"}}</tool_call>');
  const tools = [{ type: 'function', function: { name: 'zoom_in', description: 'zoom', parameters: { type: 'object' } } }];
  let s: Served;

  beforeAll(async () => {
    // Overfit: after this prompt, greedy decoding writes exactly `target` (SFT on its tokens only).
    const file = await writeCheckpoint(6, async (p) => {
      const prompt = renderMedgymChat(messages as any).tokens;
      const tokens = [...prompt, ...target];
      const mask = tokens.map((_, t) => (t >= prompt.length ? 1 : 0));
      for (let step = 0; step < 300; step++) {
        await p.crossEntropyBackward([{ tokens, mask }]);
        await p.step({ lr: 1e-2, weightDecay: 0 });
      }
    });
    s = await start(file);
  }, 60_000);

  test('plain: message.tool_calls, finish_reason tool_calls, the ids kept', async () => {
    const r = (await s.client.chat.completions.create({ model: 'tiny-vlm', messages, tools, temperature: 0, return_token_ids: true } as any)) as any;
    const c = r.choices[0];
    expect(c.token_ids).toEqual(target);
    expect(c.finish_reason).toBe('tool_calls');
    expect(c.medgym_finish_reason).toBe('stop_token');
    expect(c.message.content).toBeNull();
    expect(c.message.tool_calls).toHaveLength(1);
    expect(c.message.tool_calls[0]).toMatchObject({ type: 'function', function: { name: 'zoom_in', arguments: '{"cell":"B3"}' } });
    expect(c.message.tool_calls[0].id).toMatch(/^call_/);
  });

  test('without tools (or tool_choice none) the call stays text with finish_reason stop', async () => {
    for (const extra of [{}, { tools, tool_choice: 'none' }]) {
      const r = (await s.client.chat.completions.create({ model: 'tiny-vlm', messages, temperature: 0, ...extra } as any)) as any;
      expect(r.choices[0].message.content).toBe('<tool_call>{"name": "zoom_in", "arguments": {"cell": "B3"}}</tool_call>');
      expect(r.choices[0].finish_reason).toBe('stop');
      expect(r.choices[0].message.tool_calls).toBeUndefined();
    }
  });

  test('streamed: the tool call arrives as a tool_calls delta the client accumulates', async () => {
    const stream = (await s.client.chat.completions.create({ model: 'tiny-vlm', messages, tools, temperature: 0, stream: true } as any)) as unknown as AsyncIterable<OpenAI.ChatCompletionChunk>;
    let content = '';
    const calls: any[] = [];
    let finish: string | null = null;
    for await (const c of stream) {
      for (const ch of c.choices) {
        content += ch.delta.content ?? '';
        calls.push(...(ch.delta.tool_calls ?? []));
        finish = ch.finish_reason ?? finish;
      }
    }
    expect(content).toBe('');
    expect(finish).toBe('tool_calls');
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ index: 0, type: 'function', function: { name: 'zoom_in', arguments: '{"cell":"B3"}' } });
  });
});
