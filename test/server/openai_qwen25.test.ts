// `medgym serve --model` on the tiny Qwen2.5-VL fixture (a vocabulary with <tool_call> tokens, as
// Qwen2.5's): its greedy completion equals in-process generation; Qwen/Hermes tool-call spans in the
// model's ids (single tokens here, spelled out in Qwen2-VL's vocabulary) become tool_calls; the CLI's
// flags; and `medgym eval --policy <url> --protocol chat` (HttpPolicy's chat protocol) runs on it.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { evalAnyCommand } from '../../src/cli/eval_model';
import { serveCommand } from '../../src/cli/serve';
import { QwenTokenizer } from '../../src/models/qwen2_vl';
import { QwenVLModel } from '../../src/models/qwen2_vl/engine';
import { ChoiceText } from '../../src/server/openai/choice_text';
import { qwenDecoder } from '../../src/server/openai/qwen_text';
import type { DecodeParams, EnginePrompt, EngineStep, ServeEngine } from '../../src/server/openai/engine';
import { QwenServedModel } from '../../src/server/openai/qwen_model';
import { finalChoice, type CompletionMeta } from '../../src/server/openai/responses';
import { createOpenAIServer } from '../../src/server/openai/server';
import type { ServedModel } from '../../src/server/openai/served_model';
import { parseTrainConfig } from '../../src/train/config';
import { QWEN2_VL_TEMPLATE } from '../models/qwen2_vl/fixture';
import { expectRejects } from '../helpers/errors';
import { Rng } from '../helpers/random';
import { pngDataUri, qwenModelDir, QWEN_FIXTURES, randomViewOf, useQwenServers } from './openai_harness';

/* eslint-disable @typescript-eslint/no-explicit-any -- medgym's extensions are not in the client's types */

const DIR = qwenModelDir(QWEN_FIXTURES.qwen2_5_vl, true, QWEN2_VL_TEMPLATE);
const DIR_NO_TOOL_TOKENS = qwenModelDir(QWEN_FIXTURES.qwen2_vl, false, QWEN2_VL_TEMPLATE);
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-serve-qwen25-'));
afterAll(() => {
  for (const d of [DIR, DIR_NO_TOOL_TOKENS, TMP]) fs.rmSync(d, { recursive: true, force: true });
});
const serve = useQwenServers();

test('Qwen2.5-VL: /v1/models and a greedy completion equal to in-process generation', async () => {
  const s = await serve(DIR, { name: 'tiny-qwen25' });
  const m = (await s.client.models.list()).data[0] as any;
  expect(m.medgym).toMatchObject({ protocol: 'qwen2-vl', max_seq: 4096, vocab_size: 512 });
  expect(m.medgym.image_size).toBeUndefined();
  const img = randomViewOf(new Rng(3), 64);
  const r = (await s.client.chat.completions.create({
    model: 'tiny-qwen25',
    messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: await pngDataUri(img) } }, { type: 'text', text: 'Any fracture?' }] }],
    temperature: 0,
    max_tokens: 12,
    return_token_ids: true,
  } as any)) as any;
  const tok = QwenTokenizer.fromDir(DIR);
  const model = await QwenVLModel.load(DIR);
  const session = model.createSession();
  try {
    const end = [...new Set([tok.special.imEnd, tok.special.endOfText, ...tok.eosIds])];
    const banned = tok.addedTokens.filter((t) => t.special && !end.includes(t.id)).map((t) => t.id);
    const [id] = await session.add([{ ids: r.prompt_token_ids, images: [img] }], [{ seed: 0 }]);
    const [g] = await session.generate([id], { maxNewTokens: 12, temperature: 0, stopTokens: end, bannedTokens: banned });
    expect(r.choices[0].token_ids).toEqual(Array.from(g.tokens));
  } finally {
    session.dispose();
    model.dispose();
  }
}, 60_000);

describe('tool calls in Qwen ids become tool_calls', () => {
  const meta: CompletionMeta = { id: 'chatcmpl-x', created: 0, model: 'm', promptPositions: 1, promptTokens: [], returnTokenIds: false, logprobs: false, toolsMode: true };
  const CALL = '<tool_call>\n{"name": "zoom_in", "arguments": {"cell": "B3"}}\n</tool_call>';

  test.each([
    ['<tool_call> as single tokens (Qwen2.5)', DIR, true],
    ['<tool_call> spelled in bytes (Qwen2-VL)', DIR_NO_TOOL_TOKENS, false],
  ])('%s', (_, dir, single) => {
    const tok = QwenTokenizer.fromDir(dir);
    const ids = [...tok.encode(`Let me look.\n${CALL}\n${CALL.replace('B3', 'C4')}`), tok.special.imEnd];
    expect(ids.includes(510)).toBe(single);
    const text = new ChoiceText([], true, qwenDecoder(tok));
    const streamed: string[] = [];
    for (const id of ids) {
      text.push([id]);
      streamed.push(text.delta());
    }
    // Streaming holds everything from the first <tool_call> on; <|im_end|> is not content.
    expect(streamed.join('')).toBe('Let me look.\n');
    const f = finalChoice(meta, { index: 0, text, logp: [], finish: 'stop_token' });
    expect(f.finishReason).toBe('tool_calls');
    expect(f.toolCalls.map((c) => c.function)).toEqual([
      { name: 'zoom_in', arguments: '{"cell":"B3"}' },
      { name: 'zoom_in', arguments: '{"cell":"C4"}' },
    ]);
    expect(f.content).toBe('Let me look.\n\n');
    // Only calls (and the newline between them): no content.
    const only = new ChoiceText([], true, qwenDecoder(tok));
    only.push([...tok.encode(`${CALL}\n${CALL}`), tok.special.imEnd]);
    expect(finalChoice(meta, { index: 0, text: only, logp: [], finish: 'stop_token' }).content).toBeNull();
  });

  test('a character split across byte-level ids is held back until it is whole', () => {
    const tok = QwenTokenizer.fromDir(DIR_NO_TOOL_TOKENS);
    const ids = tok.encode('é!');
    expect(ids.length).toBe(3); // two bytes of é, then !
    const text = new ChoiceText([], false, qwenDecoder(tok));
    text.push([ids[0]]);
    expect(text.delta()).toBe('');
    text.push([ids[1]]);
    expect(text.delta()).toBe('é');
    text.push([ids[2]]);
    expect(text.delta()).toBe('!');
  });
});

/** Every sequence writes `script`, one id per step (a stop id ends it): the model's turn, forced. */
class ScriptedEngine implements ServeEngine {
  private readonly at = new Map<number, number>();
  private next = 0;
  constructor(private readonly script: number[]) {}
  async prefill(prompts: EnginePrompt[]): Promise<number[]> {
    return prompts.map(() => this.open());
  }
  async fork(_id: number, keys: EnginePrompt['key'][]): Promise<number[]> {
    return keys.map(() => this.open());
  }
  async step(ids: number[], p: DecodeParams): Promise<EngineStep[]> {
    return ids.map((id) => {
      const k = this.at.get(id)!;
      this.at.set(id, k + 1);
      const tok = this.script[k];
      return { tokens: [tok], logp: [0], finishReason: p.stopTokens.includes(tok) ? 'stop_token' : 'max_new_tokens' };
    });
  }
  release(ids: number[]): void {
    for (const id of ids) this.at.delete(id);
  }
  dispose(): void {}
  private open(): number {
    this.at.set(this.next, 0);
    return this.next++;
  }
}

test.each([
  ['Qwen2.5 vocabulary', DIR],
  ['Qwen2-VL vocabulary', DIR_NO_TOOL_TOKENS],
])('a tool call the model writes comes back as message.tool_calls, plain and streamed (%s, scripted engine)', async (_, dir) => {
  const real = await QwenServedModel.load(dir);
  const tok = real.tokenizer;
  const script = [...tok.encode('Zooming.\n<tool_call>\n{"name": "zoom_in", "arguments": {"cell": "B3"}}\n</tool_call>'), tok.special.imEnd, ...tok.encode('never reached')];
  const model: ServedModel = { info: real.info, deviceName: real.deviceName, sampling: real.sampling, decoder: real.decoder, buildPrompt: (r, l) => real.buildPrompt(r, l), createEngine: () => new ScriptedEngine(script), dispose: () => real.dispose() };
  const server = createOpenAIServer({ name: 'scripted', model });
  try {
    await server.app.listen({ host: '127.0.0.1', port: 0 });
    const client = new OpenAI({ baseURL: `http://127.0.0.1:${(server.app.server.address() as AddressInfo).port}/v1`, apiKey: 'unused', maxRetries: 0 });
    const tools = [{ type: 'function' as const, function: { name: 'zoom_in', parameters: { type: 'object', properties: { cell: { type: 'string' } } } } }];
    const body = { model: 'scripted', messages: [{ role: 'user' as const, content: 'Look closer.' }], tools, max_tokens: 100, return_token_ids: true };
    const r = (await client.chat.completions.create(body as any)) as any;
    const c = r.choices[0];
    expect(c.finish_reason).toBe('tool_calls');
    expect(c.medgym_finish_reason).toBe('stop_token');
    expect(c.message.content).toBe('Zooming.\n');
    expect(c.message.tool_calls).toEqual([{ id: expect.stringMatching(/^call_/), type: 'function', function: { name: 'zoom_in', arguments: '{"cell":"B3"}' } }]);
    expect(c.token_ids).toEqual(script.slice(0, script.indexOf(tok.special.imEnd) + 1));

    let text = '';
    const calls: any[] = [];
    let finish: string | null = null;
    for await (const chunk of (await client.chat.completions.create({ ...body, stream: true } as any)) as any) {
      for (const ch of chunk.choices) {
        text += ch.delta.content ?? '';
        calls.push(...(ch.delta.tool_calls ?? []));
        finish = ch.finish_reason ?? finish;
      }
    }
    expect(text).toBe('Zooming.\n');
    expect(calls.map((t) => t.function)).toEqual([{ name: 'zoom_in', arguments: '{"cell":"B3"}' }]);
    expect(finish).toBe('tool_calls');

    // Without tools the same text is content.
    const plain = (await client.chat.completions.create({ ...body, tools: undefined } as any)) as any;
    expect(plain.choices[0].finish_reason).toBe('stop');
    expect(plain.choices[0].message.content).toContain('<tool_call>');
  } finally {
    await server.close('abort');
  }
}, 60_000);

describe('medgym serve --model', () => {
  test('exactly one of --checkpoint and --model; Qwen-only flags are checked', async () => {
    await expectRejects(serveCommand({}), 'RangeError', /exactly one of --checkpoint .* and --model/);
    await expectRejects(serveCommand({ checkpoint: 'x.safetensors', model: DIR }), 'RangeError', /exactly one/);
    await expectRejects(serveCommand({ checkpoint: 'x.safetensors', weightsDtype: 'bfloat16' }), 'RangeError', /--weights-dtype goes with --model/);
    await expectRejects(serveCommand({ model: DIR, weightsDtype: 'fp8' }), 'RangeError', /--weights-dtype/);
    await expectRejects(serveCommand({ model: DIR, decodeMath: 'fast' }), 'RangeError', /--decode-math/);
    await expectRejects(serveCommand({ model: DIR, viewSize: '5' }), 'RangeError', /--view-size/);
    await expectRejects(serveCommand({ model: DIR, device: 'cuda' }), 'RangeError', /CPU only/);
    await expect(serveCommand({ model: path.join(TMP, 'missing') })).rejects.toThrow(/missing\/tokenizer_config\.json: missing/);
  });

  test('createOpenAIServer takes exactly one of policy and model', async () => {
    const model = await QwenServedModel.load(DIR);
    try {
      expect(() => createOpenAIServer({ name: 'x' })).toThrow(/exactly one of policy/);
    } finally {
      model.dispose();
    }
  });

  test('serves the directory under its base name', async () => {
    const log = jest.spyOn(console, 'log').mockImplementation(() => undefined);
    const server = await serveCommand({ model: DIR, port: '0', weightsDtype: 'bfloat16', decodeMath: 'bf16', viewSize: '128' });
    try {
      const { port } = server.app.server.address() as { port: number };
      const list = (await (await fetch(`http://127.0.0.1:${port}/v1/models`)).json()) as any;
      expect(list.data[0].id).toBe(path.basename(DIR));
      // 128×128 → smart_resize 140×140 → 10×10 patches → 25 merged, plus the delimiters.
      expect(list.data[0].medgym).toMatchObject({ protocol: 'qwen2-vl', image_tokens: 27 });
      expect(log.mock.calls[0][0]).toMatch(/qwen2-vl/);
    } finally {
      await server.close('abort');
      log.mockRestore();
      process.removeAllListeners('SIGINT');
      process.removeAllListeners('SIGTERM');
    }
  }, 60_000);
});

test('medgym eval --policy <url> --protocol chat runs on the served Qwen model', async () => {
  const s = await serve(DIR, { name: 'tiny-qwen25' });
  const cfg = parseTrainConfig({ seed: 2, threads: 1, env: { systemPrompt: 'short', maxTurns: 2, maxNewTokensPerTurn: 24 }, eval: { items: 2, samples: 2, temperature: 1 } });
  const cfgFile = path.join(TMP, 'config.json');
  fs.writeFileSync(cfgFile, JSON.stringify(cfg));
  const out = path.join(TMP, 'eval.json');
  const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    expect(await evalAnyCommand({ policy: s.baseURL, model: 'tiny-qwen25', protocol: 'chat', config: cfgFile, out })).toBe(0);
  } finally {
    stderr.mockRestore();
  }
  const r = JSON.parse(fs.readFileSync(out, 'utf8'));
  expect(r.items).toBe(2);
  expect(r.samples).toBe(2);
  for (const m of [r.withTools, r.withoutTools]) {
    expect(m.acc1).toBeGreaterThanOrEqual(0);
    expect(m.acc1).toBeLessThanOrEqual(1);
    expect(m.passAtK).toHaveLength(2);
  }
  // The requests went through the scheduler and nothing was left behind.
  expect(s.server.scheduler.stats).toMatchObject({ waiting: 0, active: 0, sequences: 0 });
}, 120_000);
