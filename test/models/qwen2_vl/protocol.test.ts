// medgym env protocol <-> Qwen chat protocol: actions both ways (tolerant of model formatting,
// malformed outputs passed to the env), and env episodes as Qwen messages.
import { buildPrompt, parseAssistant, toolResponseText } from '../../../src/env/protocol';
import { envActionToQwen, episodeToQwenMessages, parseEnvPrompt, parseEnvResponse, qwenToEnvAction, QWEN_SYSTEM_PROMPT, renderChat } from '../../../src/models/qwen2_vl';
import { realTokenizer } from './fixture'; // loaded on first use, by the last test only

describe('Qwen assistant text -> env action', () => {
  test("Qwen's canonical call", () => {
    const r = qwenToEnvAction('<tool_call>\n{"name": "zoom_in", "arguments": {"cell": "B3"}}\n</tool_call><|im_end|>');
    expect(r).toEqual({ action: '<tool_call>{"name":"zoom_in","arguments":{"cell":"B3"}}</tool_call>', calls: 1, dropped: [] });
    const seg = parseAssistant(r.action);
    expect(seg.formatErrors).toEqual([]);
    expect(seg.calls[0].call).toEqual({ name: 'zoom_in', arguments: { cell: 'B3' } });
  });

  test('whitespace, several calls, prose before (becomes think), arguments as a JSON string', () => {
    const text = 'I will look closer at both regions.\n\n<tool_call>  {"name":"zoom_in",\n "arguments": {"bbox": [1, 2, 30, 40]}}  </tool_call>\n<tool_call>\n{"name": "enhance", "arguments": "{\\"method\\": \\"clahe\\"}"}\n</tool_call>';
    const r = qwenToEnvAction(text);
    expect(r.calls).toBe(2);
    expect(r.action).toBe(
      '<think>I will look closer at both regions.</think><tool_call>{"name":"zoom_in","arguments":{"bbox":[1,2,30,40]}}</tool_call><tool_call>{"name":"enhance","arguments":{"method":"clahe"}}</tool_call>',
    );
    const seg = parseAssistant(r.action);
    expect(seg.formatErrors).toEqual([]);
    expect(seg.calls.map((c) => c.call?.name)).toEqual(['zoom_in', 'enhance']);
  });

  test('<answer> inside prose; Qwen3 think block; text after the answer dropped', () => {
    const r = qwenToEnvAction('<think>\nThe zoom shows a nodule.\n</think>\n\nThe finding is a nodule, so the answer is <answer> A </answer>. Done.<|im_end|>');
    expect(r.answer).toBe('A');
    expect(r.action).toBe('<think>The zoom shows a nodule.\nThe finding is a nodule, so the answer is</think><answer>A</answer>');
    expect(r.dropped).toEqual(['. Done.']);
    expect(parseAssistant(r.action)).toEqual({ calls: [], answer: 'A', formatErrors: [] });
  });

  test('malformed outputs reach the env, which names the problem', () => {
    const bad = qwenToEnvAction('<tool_call>\n{"name": "zoom_in", "arguments": {"cell": "B3"}\n</tool_call>');
    expect(bad.action).toBe('<tool_call>{"name": "zoom_in", "arguments": {"cell": "B3"}</tool_call>');
    expect(parseAssistant(bad.action).formatErrors).toEqual(['invalid JSON in tool call']);

    const truncated = qwenToEnvAction('<tool_call>\n{"name": "zoom_in", "argu');
    expect(truncated.calls).toBe(1);
    expect(parseAssistant(truncated.action).formatErrors).toContain('truncated <tool_call> (no </tool_call>)');

    const nothing = qwenToEnvAction('I think it is B.');
    expect(nothing.action).toBe('<think>I think it is B.</think>');
    expect(parseAssistant(nothing.action).formatErrors).toEqual(['neither a tool call nor an answer']);

    const noName = qwenToEnvAction('<tool_call>{"arguments": {}}</tool_call>');
    expect(parseAssistant(noName.action).formatErrors).toEqual(['tool call without a name']);

    expect(qwenToEnvAction('').action).toBe('');
    expect(qwenToEnvAction('<|im_end|>junk').dropped).toEqual(['<|im_end|>junk']);
  });
});

describe('env action -> Qwen assistant text', () => {
  const cases = [
    '<tool_call>{"name":"zoom_in","arguments":{"cell":"B3"}}</tool_call>',
    '<think>Small lesion, zoom.</think><tool_call>{"name":"zoom_in","arguments":{"cell":"C2","span":2}}</tool_call><tool_call>{"name":"window","arguments":{"center":40,"width":400}}</tool_call>',
    '<answer>B</answer>',
    '<think>Clear now.</think><answer>C</answer>',
  ];
  test.each(cases)('round trip %s', (action) => {
    const q = envActionToQwen(action);
    expect(qwenToEnvAction(q).action).toBe(action);
    // And the Qwen side is stable too.
    expect(envActionToQwen(qwenToEnvAction(q).action)).toBe(q);
  });

  test("calls in Qwen's layout", () => {
    expect(envActionToQwen('<think>Look.</think><tool_call>{"name":"zoom_in","arguments":{"cell":"B3"}}</tool_call>')).toBe(
      'Look.\n<tool_call>\n{"name": "zoom_in", "arguments": {"cell": "B3"}}\n</tool_call>',
    );
    expect(envActionToQwen('<tool_call>{"name": oops}</tool_call>')).toBe('<tool_call>\n{"name": oops}\n</tool_call>');
  });
});

describe('env episode -> Qwen messages', () => {
  const prompt = buildPrompt('Medical VQA.', 'Which side has the effusion?', ['left', 'right'], 512, 512);
  const response = toolResponseText('zoom_in: cell B3 shown', 1).replace(/\nassistant: $/, '') + toolResponseText('error: too many', 0);

  test('the env prompt and responses parse', () => {
    expect(parseEnvPrompt(prompt)).toEqual({ system: 'Medical VQA.', question: 'Which side has the effusion?\nA. left\nB. right\nImage size: 512x512 pixels.', images: 1 });
    expect(parseEnvResponse(response)).toEqual([
      { text: 'zoom_in: cell B3 shown', images: 1 },
      { text: 'error: too many', images: 0 },
    ]);
    expect(() => parseEnvPrompt('no structure')).toThrow(SyntaxError);
  });

  test('messages, and their rendering with the real template', () => {
    // The env's system text is medgym's; a Qwen policy gets QWEN_SYSTEM_PROMPT instead.
    const p = { ...parseEnvPrompt(prompt), system: QWEN_SYSTEM_PROMPT };
    const msgs = episodeToQwenMessages({
      ...p,
      turns: [
        { action: '<tool_call>{"name":"zoom_in","arguments":{"cell":"B3"}}</tool_call><tool_call>{"name":"flip","arguments":{"axis":"vertical"}}</tool_call>', responses: parseEnvResponse(response) },
        { action: '<answer>A</answer>', raw: 'It is on the left. <answer>A</answer>' },
      ],
    });
    expect(msgs[0].content).toBe(QWEN_SYSTEM_PROMPT);
    expect(msgs.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'tool', 'tool', 'assistant']);
    expect(msgs[1].content).toEqual([{ type: 'image' }, { type: 'text', text: p.question }]);
    expect(msgs[2].content).toBe('<tool_call>\n{"name": "zoom_in", "arguments": {"cell": "B3"}}\n</tool_call>\n<tool_call>\n{"name": "flip", "arguments": {"axis": "vertical"}}\n</tool_call>');
    expect(msgs[3].content).toEqual([{ type: 'text', text: 'zoom_in: cell B3 shown' }, { type: 'image' }]);
    expect(msgs[4].content).toBe('error: too many');
    expect(msgs[5].content).toBe('It is on the left. <answer>A</answer>');
  });

  test('rendered with the real template: images counted', () => {
    const msgs = episodeToQwenMessages({ ...parseEnvPrompt(prompt), turns: [{ action: '<tool_call>{"name":"zoom_in","arguments":{"cell":"B3"}}</tool_call>', responses: [{ text: 'ok', images: 1 }] }] });
    const r = renderChat(realTokenizer(), msgs);
    expect(r.images).toBe(2);
    expect(r.text).toContain('<|im_start|>user\n<tool_response>\nok<|vision_start|><|image_pad|><|vision_end|>\n</tool_response><|im_end|>\n<|im_start|>assistant\n');
  });
});
