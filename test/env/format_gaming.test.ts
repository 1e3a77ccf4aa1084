// The format reward cannot be farmed: one test per gaming pattern (SPEC §7), each against an honest
// episode of the same item that does earn it, so every test can fail both ways.
import type { Dataset, VqaItem } from '../../src/data/types';
import { make, type MedGymOptions, type StepInfo, type StepResult } from '../../src/env';

/** One 64×64 item with two options. */
const tinyDataset = (): Dataset => {
  const item: VqaItem = { id: 'gaming/0', image: { data: new Uint8Array(64 * 64).fill(90), width: 64, height: 64, channels: 1, bitDepth: 8 }, question: 'Is it bright?', options: ['yes', 'no'], answer: 1, modality: 'xray', questionType: 'closed' };
  return { name: 'gaming', size: 1, get: async () => item, stream: async function* () { yield item; } };
};

const zoom = (cell: string): string => `<tool_call>{"name": "zoom_in", "arguments": {"cell": "${cell}"}}</tool_call>`;
const answer = (text: string): string => `<answer>${text}</answer><|eos|>`;
const letterOf = (info: StepInfo): string => info.groundTruth!.letter!;

/** Runs `segments` (a function of the revealed ground truth) on item 0 and returns the last step. */
async function episode(segments: (info: StepInfo) => string[], options: MedGymOptions = {}): Promise<StepResult> {
  const env = make('MedGym-Dataset-v0', { dataset: tinyDataset(), revealGroundTruth: true, maxTurns: 8, ...options });
  const { info } = await env.reset({ options: { index: 0 } });
  let r: StepResult | undefined;
  for (const s of segments(info)) {
    r = await env.step(s);
    if (r.terminated || r.truncated) break;
  }
  expect(r!.terminated).toBe(true);
  return r!;
}
const format = (r: StepResult): number => r.info.reward!.components.format;

describe('format reward: gaming patterns earn nothing', () => {
  test('honest episodes earn it (the control of every case below)', async () => {
    expect(format(await episode((i) => [answer(letterOf(i))]))).toBe(1);
    expect(format(await episode((i) => [zoom('B2'), answer(letterOf(i))]))).toBe(1);
    expect(format(await episode((i) => [zoom('B2'), answer(letterOf(i))], { requireTool: true }))).toBe(1);
    expect(format(await episode((i) => [zoom('B2'), zoom('C3'), answer(letterOf(i))]))).toBe(1);
  });

  test('an empty answer', async () => {
    const r = await episode(() => ['<answer></answer><|eos|>']);
    expect(r.info.answer!.status).toBe('empty');
    expect(format(r)).toBe(0);
    expect(format(await episode(() => [answer('  ')]))).toBe(0);
  });

  test('a 100,000-character answer', async () => {
    const r = await episode((i) => [answer(letterOf(i) + ' '.repeat(10) + 'x'.repeat(100_000))], { maxNewTokensPerTurn: 200_000, maxTotalTokens: 300_000 });
    expect(r.info.answer!.status).toBe('too_long');
    expect(format(r)).toBe(0);
    expect(r.info.reward!.components.accuracy).toBe(0);
  });

  test('several answers in one segment', async () => {
    const r = await episode((i) => [`<answer>${letterOf(i)}</answer><answer>${letterOf(i) === 'A' ? 'B' : 'A'}</answer><|eos|>`]);
    expect(r.info.formatErrors.join()).toMatch(/<answer> after <\/answer>/);
    expect(format(r)).toBe(0);
  });

  test('"A or B" and other hedges', async () => {
    for (const hedge of ['A or B', 'A/B', 'A, B', 'A and B', 'AB']) {
      const r = await episode(() => [answer(hedge)]);
      expect(r.info.answer!.status).toBe('multiple');
      expect(format(r)).toBe(0);
      expect(r.info.reward!.components.accuracy).toBe(0);
    }
  });

  test('an answer before any tool output when the task requires a tool', async () => {
    const first = await episode((i) => [answer(letterOf(i))], { requireTool: true });
    expect(first.info.formatErrors.join()).toMatch(/answered before any tool output/);
    expect(format(first)).toBe(0);
    expect(first.info.reward!.components.accuracy).toBe(1); // graded as usual
    // A failed call is no tool output either.
    const failed = await episode((i) => ['<tool_call>{"name": "zoom_in", "arguments": {"cell": "Q9"}}</tool_call>', answer(letterOf(i))], { requireTool: true });
    expect(format(failed)).toBe(0);
    // The answer written in the segment of the call, before its output came back, is ignored.
    const same = await episode((i) => [zoom('B2') + answer(letterOf(i)), answer(letterOf(i))]);
    expect(same.info.formatErrors.join()).toMatch(/same segment as a tool call/);
    expect(format(same)).toBe(0);
  });

  test('a tool call repeated to pad the episode', async () => {
    const r = await episode((i) => [zoom('B2'), zoom('B2'), answer(letterOf(i))]);
    expect(r.info.formatErrors).toEqual(['turn 2: repeated tool call (the same as in turn 1)']);
    expect(format(r)).toBe(0);
    // The same call with its keys in another order and other spacing is the same call.
    const reordered = await episode((i) => [
      '<tool_call>{"name": "zoom_in", "arguments": {"cell": "B2", "span": 2}}</tool_call>',
      '<tool_call>{"arguments":{"span":2,"cell":"B2"},"name":"zoom_in"}</tool_call>',
      answer(letterOf(i)),
    ]);
    expect(format(reordered)).toBe(0);
    // Two calls of one segment count too.
    expect(format(await episode((i) => [zoom('C1') + zoom('C1'), answer(letterOf(i))]))).toBe(0);
  });

  test('step() before reset() and after the end say which', async () => {
    const env = make('MedGym-Dataset-v0', { dataset: tinyDataset() });
    await expect(env.step(answer('A'))).rejects.toThrow(/before reset\(\): call reset\(\) first/);
    await env.reset({ seed: 0 });
    await env.step(answer('A'));
    await expect(env.step(answer('A'))).rejects.toThrow(/on a finished episode: call reset\(\) to start the next one/);
  });
});
