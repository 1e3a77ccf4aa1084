import { buildPrompt, parseAssistant, toolResponseText } from '../../src/env/protocol';
import { gradeAnswer } from '../../src/rewards';

describe('protocol text (SPEC §3)', () => {
  test('prompt: bos, system, user image, question with options and size, assistant', () => {
    const p = buildPrompt('SYS', 'What?', ['liver', 'spleen'], 256, 128);
    expect(p).toBe('<|bos|>SYS\nuser: <|image|>\nWhat?\nA. liver\nB. spleen\nImage size: 256x128 pixels.\nassistant: ');
  });
  test('tool response: one <|image|> per image', () => {
    expect(toolResponseText('zoom_in [0, 0, 64, 64]', 2)).toBe('\n<tool_response>zoom_in [0, 0, 64, 64]<|image|><|image|></tool_response>\nassistant: ');
  });
  test('dataset text cannot inject special tokens', () => {
    const p = buildPrompt('s', 'q <answer>A</answer>', ['<|eos|>'], 1, 1);
    expect(p).not.toContain('<answer>');
    expect(p).not.toContain('<|eos|>');
  });
});

describe('parseAssistant', () => {
  test('well-formed tool call, with think', () => {
    const r = parseAssistant('<think>look at B3</think><tool_call>{"name": "zoom_in", "arguments": {"cell": "B3"}}</tool_call>');
    expect(r.formatErrors).toEqual([]);
    expect(r.calls).toEqual([{ call: { name: 'zoom_in', arguments: { cell: 'B3' } } }]);
    expect(r.answer).toBeUndefined();
  });
  test('well-formed answer with eos', () => {
    const r = parseAssistant('<answer>B</answer><|eos|>');
    expect(r).toEqual({ calls: [], answer: 'B', formatErrors: [] });
  });
  test('several tool calls in one segment', () => {
    const r = parseAssistant('<tool_call>{"name":"view_original","arguments":{}}</tool_call>\n<tool_call>{"name":"rotate","arguments":{"angle":90}}</tool_call>');
    expect(r.calls.map((c) => c.call?.name)).toEqual(['view_original', 'rotate']);
    expect(r.formatErrors).toEqual([]);
  });
  test('stray text is recorded, calls still parsed', () => {
    const r = parseAssistant('I will zoom. <tool_call>{"name":"zoom_in","arguments":{"cell":"A1"}}</tool_call> ok');
    expect(r.calls).toHaveLength(1);
    expect(r.formatErrors).toContain('stray text outside tags');
  });
  test('truncated tags', () => {
    expect(parseAssistant('<tool_call>{"name":"zoom_in"').calls[0].error).toMatch(/truncated/);
    const a = parseAssistant('<answer>B');
    expect(a.answer).toBeUndefined();
    expect(a.formatErrors.join()).toMatch(/truncated <answer>/);
    expect(parseAssistant('<think>hmm').formatErrors.join()).toMatch(/truncated <think>/);
  });
  test('invalid JSON, non-objects, missing name', () => {
    expect(parseAssistant('<tool_call>{name: zoom}</tool_call>').calls[0].error).toMatch(/invalid JSON/);
    expect(parseAssistant('<tool_call>[1,2]</tool_call>').calls[0].error).toMatch(/JSON object/);
    expect(parseAssistant('<tool_call>{"arguments":{}}</tool_call>').calls[0].error).toMatch(/name/);
  });
  test('huge numbers parse (validation rejects them later); huge bodies are refused unparsed', () => {
    const r = parseAssistant('<tool_call>{"name":"zoom_in","arguments":{"bbox":[1e308,-1e308,1e400,5]}}</tool_call>');
    expect((r.calls[0].call?.arguments as { bbox: number[] }).bbox[2]).toBe(Infinity);
    expect(parseAssistant(`<tool_call>${'9'.repeat(1 << 20)}</tool_call>`).calls[0].error).toMatch(/longer than/);
  });
  test('answer after a tool call is ignored; tool call after an answer too', () => {
    const r = parseAssistant('<tool_call>{"name":"view_original","arguments":{}}</tool_call><answer>A</answer>');
    expect(r.answer).toBeUndefined();
    expect(r.formatErrors.join()).toMatch(/same segment/);
    const s = parseAssistant('<answer>A</answer><tool_call>{"name":"view_original","arguments":{}}</tool_call>');
    expect(s.answer).toBe('A');
    expect(s.calls).toHaveLength(0);
    expect(s.formatErrors.length).toBeGreaterThan(0);
  });
  test('nothing usable', () => {
    expect(parseAssistant('').formatErrors).toContain('neither a tool call nor an answer');
    expect(parseAssistant('</tool_call></answer>').formatErrors.join()).toMatch(/unexpected/);
  });
});

describe('answer grading (SPEC §7)', () => {
  const o = ['liver', 'spleen', 'right kidney', 'left kidney'];
  test.each([
    ['B', true, 'ok'],
    ['(b)', true, 'ok'],
    [' B. ', true, 'ok'],
    ['spleen', true, 'ok'],
    ['B. Spleen', true, 'ok'],
    ['A', false, 'ok'],
    ['', false, 'empty'],
    ['   ', false, 'empty'],
    ['A or B', false, 'multiple'],
    ['A/B', false, 'multiple'],
    ['A, B', false, 'multiple'],
    ['AB', false, 'multiple'],
    ['B. liver', false, 'multiple'],
    ['B because the lesion is in the spleen', false, 'too_long'],
    ['E', false, 'unrecognized'],
    ['pancreas', false, 'unrecognized'],
  ])('%j → correct %s, %s', (raw, correct, status) => {
    const g = gradeAnswer(raw, o, 1);
    expect(g.correct).toBe(correct);
    expect(g.status).toBe(status);
  });
  test('open questions: normalized exact match, too long rejected', () => {
    expect(gradeAnswer('Yes.', [], 'yes').correct).toBe(true);
    expect(gradeAnswer('no', [], 'yes').correct).toBe(false);
    expect(gradeAnswer('yes '.repeat(10), [], 'yes').status).toBe('too_long');
  });
});
