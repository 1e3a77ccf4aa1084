// ≥ 10,000 random and adversarial actions: no throw, no unhandled rejection, and a well-formed
// observation every time. Items come from a small cached pool so that resets cost no generation.
import { SynthDataset } from '../../src/data/synth';
import type { Dataset, VqaItem } from '../../src/data/types';
import { make } from '../../src/env';
import { encode, IMAGE_ID, SPECIAL_TOKENS, VOCAB_SIZE } from '../../src/tokenizer';
import { Rng } from '../helpers/random';

const NUMBERS = [0, -1, 1e308, -1e308, '1e400', 'NaN', 'Infinity', -0, 0.5, 255, 256, 65535, 2 ** 53, -(2 ** 31), '"12"', 'null', 'true', '[]', '{}'];
const TOOLS = ['zoom_in', 'crop_multi', 'window', 'enhance', 'rotate', 'flip', 'view_original', 'rm -rf', '', '__proto__', 'constructor'];

function action(rng: Rng): string | number[] {
  const num = (): string => String(NUMBERS[rng.int(0, NUMBERS.length)]);
  const kind = rng.int(0, 12);
  switch (kind) {
    case 0: // random bytes (as a latin1 string)
      return String.fromCharCode(...Array.from({ length: rng.int(0, 200) }, () => rng.int(0, 256)));
    case 1: // random token ids
      return Array.from({ length: rng.int(0, 100) }, () => rng.int(0, VOCAB_SIZE));
    case 2: // nested and shuffled tags
      return Array.from({ length: rng.int(1, 12) }, () => SPECIAL_TOKENS[rng.int(0, SPECIAL_TOKENS.length)] + (rng.next() < 0.3 ? '{"name":"zoom_in"' : '')).join('');
    case 3: // one huge string now and then
      return rng.next() < 0.02 ? '<tool_call>' + 'A'.repeat(1 << 20) : 'x'.repeat(rng.int(0, 5000));
    case 4: // numbers that break naive code
      return `<tool_call>{"name":"zoom_in","arguments":{"bbox":[${num()},${num()},${num()},${num()}]}}</tool_call>`;
    case 5:
      return `<tool_call>{"name":"window","arguments":{"center":${num()},"width":${num()}}}</tool_call>`;
    case 6: // cells, spans, scales, unknown tools
      return `<tool_call>{"name":"${TOOLS[rng.int(0, TOOLS.length)]}","arguments":{"cell":"${'ABCDEZ'[rng.int(0, 6)]}${rng.int(0, 6)}","span":${num()},"scale":${num()}}}</tool_call>`;
    case 7: // crop_multi with junk entries
      return `<tool_call>{"name":"crop_multi","arguments":{"bboxes":[${Array.from({ length: rng.int(0, 7) }, () => (rng.next() < 0.5 ? `{"cell":"B${rng.int(1, 5)}"}` : `{"bbox":[${num()},${num()},${num()},${num()}]}`)).join(',')}]}}</tool_call>`;
    case 8: // deep nesting
      return `<tool_call>{"name":"rotate","arguments":${'{"a":'.repeat(500)}1${'}'.repeat(500)}}</tool_call>`;
    case 9: // answers of all shapes
      return `<answer>${['A', '', 'A or B', 'A/B', 'Z', 'B'.repeat(rng.int(0, 300)), '<answer>A</answer>'][rng.int(0, 7)]}</answer>${rng.next() < 0.5 ? '<|eos|>' : ''}`;
    case 10: // valid calls (these run sharp)
      return rng.next() < 0.5 ? `<tool_call>{"name":"zoom_in","arguments":{"cell":"C2"}}</tool_call>` : `<tool_call>{"name":"rotate","arguments":{"angle":180}}</tool_call>`;
    default: // truncated JSON of every length
      return '<tool_call>{"name":"zoom_in","arguments":{"bbox":[1,2,3,4]}}</tool_call>'.slice(0, rng.int(0, 60));
  }
}

test('fuzz: 10,000 adversarial actions', async () => {
  const rejections: unknown[] = [];
  const onRejection = (r: unknown): void => void rejections.push(r);
  process.on('unhandledRejection', onRejection);
  const synth = new SynthDataset({ seed: 1 });
  const pool: VqaItem[] = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map((i) => synth.get(i)));
  const dataset: Dataset = { name: 'pool', size: pool.length, get: async (i) => pool[i], stream: () => synth.stream() };
  const env = make('MedGym-Dataset-v0', { dataset, maxTurns: 40, viewSize: 32 });
  const rng = new Rng(2024);
  await env.reset({ seed: 0 });
  let steps = 0;
  let resets = 0;
  let toolOk = 0;
  const t0 = Date.now();
  for (; steps < 10_000; steps++) {
    const a = action(rng);
    const r = await env.step(a);
    const o = r.observation;
    expect(typeof o.text).toBe('string');
    const nImg = o.tokens.reduce((n, t) => n + (t === IMAGE_ID ? 1 : 0), 0);
    if (nImg !== o.images.length || o.images.some((im) => im.data.length !== 32 * 32 * 3) || !Number.isFinite(r.reward)) {
      throw new Error(`malformed observation after action ${JSON.stringify(String(a).slice(0, 200))}`);
    }
    if (steps % 50 === 0) expect(o.tokens).toEqual(encode(o.text));
    if (!r.terminated && !r.truncated && !o.text.endsWith('</tool_response>\nassistant: ')) throw new Error(`bad response ${o.text.slice(0, 200)}`);
    toolOk += r.info.toolCalls.filter((c) => c.ok && c.turn === r.info.turn).length;
    if (r.terminated || r.truncated) {
      await env.reset();
      resets++;
    }
  }
  process.off('unhandledRejection', onRejection);
  expect(steps).toBe(10_000);
  expect(rejections).toEqual([]);
  // The fuzzer reaches the tools and ends episodes, so it exercises more than the parser.
  expect(toolOk).toBeGreaterThan(300);
  expect(resets).toBeGreaterThan(100);
  console.log(`fuzz: ${steps} actions, ${resets} episodes, ${toolOk} successful tool calls, ${Date.now() - t0} ms`);
});
