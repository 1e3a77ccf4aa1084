// QwenEnvPolicy: a Qwen2-VL model behind medgym's Policy interface. (1) The translation, with a scripted
// Qwen session and the real env and tokenizer: the prompt as the chat template renders it (image pads =
// merged tokens), generated Qwen text → env action ids, env responses appended as the suffix of the
// conversation rendered again (the ids the session holds equal a fresh encoding of the whole
// conversation), end tokens, context limits, fork keys, a template that rewrites earlier turns refused.
// (2) rollout() and evaluate() on the default env with a tiny random checkpoint over the real Qwen
// vocabulary. (3) `medgym eval --model <dir>` through the CLI.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { evalAnyCommand } from '../../../src/cli/eval_model';
import { makeVec, type MedGymEnv } from '../../../src/env';
import { evaluate } from '../../../src/eval';
import { writeSafetensorsSync } from '../../../src/io/safetensors';
import { applyChatTemplate, parseEnvPrompt, parseEnvResponse, parseQwenConfig, preprocessImage, QWEN_SYSTEM_PROMPT, QwenTokenizer, toQwenTools, weightTable, type QwenMessage } from '../../../src/models/qwen2_vl';
import { QwenVLModel, type QwenGenerated, type QwenGenerateOptions, type QwenSequence } from '../../../src/models/qwen2_vl/engine';
import { maxPositionEmbeddings, QwenEnvPolicy, QwenEnvProtocolError, QwenEnvSession, type QwenEnvSpec, type QwenSessionLike } from '../../../src/models/qwen2_vl/env_policy';
import type { QwenSampleKey } from '../../../src/models/qwen2_vl/session';
import { rollout } from '../../../src/rollout';
import { GENERATOR_ITEMS } from '../../../src/rollout/items';
import { decode, encode, TOOL_CALL_ID } from '../../../src/tokenizer';
import type { ViewImage } from '../../../src/tools/image';
import { toolJsonSchemas } from '../../../src/tools/schemas';
import { DEFAULT_ENV_ID } from '../../../src/train/config';
import { QWEN2_VL_TEMPLATE, QWEN3_DIR } from './fixture';

const ROOT = path.resolve(__dirname, '../../..');
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-qwen-env-'));
afterAll(() => fs.rmSync(TMP, { recursive: true, force: true }));

/**
 * A tiny random Qwen2-VL directory over the real vocabulary: the real tokenizer files linked in,
 * Qwen2-VL's processor chat template, generation_config eos [<|im_end|>, <|endoftext|>].
 */
function tinyModelDir(): string {
  const dir = path.join(TMP, 'tiny-qwen2-vl');
  fs.mkdirSync(dir);
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.symlinkSync(path.join(QWEN3_DIR, f), path.join(dir, f));
  const config = {
    architectures: ['Qwen2VLForConditionalGeneration'],
    model_type: 'qwen2_vl',
    vocab_size: 151936,
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    rms_norm_eps: 1e-6,
    rope_theta: 1e6,
    max_position_embeddings: 32768,
    tie_word_embeddings: true,
    rope_scaling: { type: 'mrope', mrope_section: [2, 1, 1] },
    bos_token_id: 151643,
    eos_token_id: 151645,
    vision_start_token_id: 151652,
    vision_end_token_id: 151653,
    vision_token_id: 151654,
    image_token_id: 151655,
    video_token_id: 151656,
    vision_config: { depth: 1, embed_dim: 16, hidden_size: 16, mlp_ratio: 2, num_heads: 2, in_chans: 3, patch_size: 14, spatial_merge_size: 2, temporal_patch_size: 2 },
  };
  const write = (f: string, v: unknown): void => fs.writeFileSync(path.join(dir, f), JSON.stringify(v));
  write('config.json', config);
  write('generation_config.json', { eos_token_id: [151645, 151643], pad_token_id: 151643 });
  write('chat_template.json', { chat_template: QWEN2_VL_TEMPLATE });
  write('preprocessor_config.json', {
    min_pixels: 3136,
    max_pixels: 12845056,
    patch_size: 14,
    temporal_patch_size: 2,
    merge_size: 2,
    image_mean: [0.48145466, 0.4578275, 0.40821073],
    image_std: [0.26862954, 0.26130258, 0.27577711],
    image_processor_type: 'Qwen2VLImageProcessor',
  });
  let x = 12345;
  const rand = (): number => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  const tensors = weightTable(parseQwenConfig(config)).map(({ name, shape }) => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (/norm|ln_q/.test(name) && name.endsWith('.weight')) data.fill(1);
    else if (!name.endsWith('.bias')) for (let i = 0; i < data.length; i++) data[i] = 0.05 * rand();
    return { name, shape, data, dtype: 'BF16' as const };
  });
  writeSafetensorsSync(path.join(dir, 'model.safetensors'), tensors);
  return dir;
}

const DIR = tinyModelDir();
let tok: QwenTokenizer;
beforeAll(() => {
  tok = QwenTokenizer.fromDir(DIR); // ~1.5 s: the real 11 MB tokenizer.json
});

const S = { imEnd: 151645, endOfText: 151643, imStart: 151644, visionStart: 151652, visionEnd: 151653, imagePad: 151655, toolCall: 151657, toolCallEnd: 151658 };

test('the tokenizer of the tiny directory has the real Qwen ids', () => {
  expect(tok.special).toMatchObject({ imEnd: S.imEnd, endOfText: S.endOfText, imStart: S.imStart, visionStart: S.visionStart, visionEnd: S.visionEnd, imagePad: S.imagePad, toolCallStart: S.toolCall, toolCallEnd: S.toolCallEnd });
  expect(tok.tokenId('<|video_pad|>')).toBe(151656);
  expect(tok.eosIds).toEqual([S.imEnd, S.endOfText]);
});

/** A Qwen session that records what it is given and answers generate() from a script of Qwen texts. */
class ScriptedSession implements QwenSessionLike {
  held = new Map<number, number[]>();
  calls: { op: string; ids?: number[]; keys?: QwenSampleKey[]; options?: QwenGenerateOptions; images?: number }[] = [];
  script: string[][] = [];
  private next = 0;
  constructor(private readonly t: QwenTokenizer) {}
  async add(seqs: QwenSequence[], keys?: QwenSampleKey[]): Promise<number[]> {
    this.calls.push({ op: 'add', keys, images: seqs.reduce((a, s) => a + (s.images?.length ?? 0), 0) });
    return seqs.map((s) => (this.held.set(this.next, Array.from(s.ids)), this.next++));
  }
  async append(items: { id: number; input: QwenSequence }[]): Promise<void> {
    for (const it of items) {
      this.calls.push({ op: 'append', ids: Array.from(it.input.ids), images: it.input.images?.length ?? 0 });
      this.held.get(it.id)!.push(...Array.from(it.input.ids));
    }
  }
  async fork(id: number, n: number, keys?: QwenSampleKey[]): Promise<number[]> {
    this.calls.push({ op: 'fork', keys });
    return Array.from({ length: n }, () => (this.held.set(this.next, [...this.held.get(id)!]), this.next++));
  }
  async generate(ids: number[], options: QwenGenerateOptions = {}): Promise<QwenGenerated[]> {
    this.calls.push({ op: 'generate', options });
    const texts = this.script.shift()!;
    return ids.map((id, i) => {
      let tokens = this.t.encode(texts[i]).slice(0, options.maxNewTokens);
      const stop = tokens.findIndex((t) => options.stopTokens?.includes(t));
      if (stop >= 0) tokens = tokens.slice(0, stop + 1);
      this.held.get(id)!.push(...tokens);
      return { tokens: Int32Array.from(tokens), logp: new Float32Array(tokens.length).fill(-1), finishReason: stop >= 0 ? 'stop_token' : 'max_new_tokens' };
    });
  }
  release(ids: number[]): void {
    for (const id of ids) this.held.delete(id);
  }
  dispose(): void {
    this.held.clear();
  }
}

function spec(over: Partial<QwenEnvSpec> = {}): QwenEnvSpec {
  return {
    tokenizer: tok,
    vocabSize: 151936,
    padCount: (v: ViewImage) => preprocessImage(v).mergedTokens,
    maxSeq: 32768,
    systemPrompt: QWEN_SYSTEM_PROMPT,
    tools: toQwenTools(toolJsonSchemas()),
    render: {},
    ...over,
  };
}

async function envAt(index: number): Promise<{ env: MedGymEnv; obs: { tokens: number[]; images: ViewImage[] } }> {
  const env = makeVec(DEFAULT_ENV_ID, 1, { systemPrompt: '' }).envs[0];
  const { observation } = await env.reset({ options: { index } });
  return { env, obs: observation };
}

const pads = (ids: number[]): number => ids.filter((t) => t === S.imagePad).length;
const TOOLS = toQwenTools(toolJsonSchemas());

/** Qwen3's template (in the package's tokenizer_config.json): renders tools and the tool role itself, not images. */
const QWEN3_TEMPLATE = (JSON.parse(fs.readFileSync(path.join(QWEN3_DIR, 'tokenizer_config.json'), 'utf8')) as { chat_template: string }).chat_template;

test.each([
  ["Qwen2-VL's processor template", QWEN2_VL_TEMPLATE],
  ["Qwen3's template (tools and the tool role rendered by the template)", QWEN3_TEMPLATE],
])('add → generate → env → append, %s: the session holds exactly a fresh encoding of the conversation', async (_, template) => {
  const { env, obs } = await envAt(GENERATOR_ITEMS.evalItems(1)[0]);
  const fake = new ScriptedSession(tok);
  const s = new QwenEnvSession(spec({ render: { template } }), fake, { seed: 9 });
  const [id] = await s.add([{ tokens: obs.tokens, images: obs.images }]);
  const n0 = preprocessImage(obs.images[0]).mergedTokens;
  const prompt = fake.held.get(id)!;
  const text0 = tok.decode(prompt);
  expect(text0.startsWith(`<|im_start|>system\n${QWEN_SYSTEM_PROMPT}\n\n# Tools`)).toBe(true);
  expect(text0).toContain('"name": "zoom_in"');
  expect(text0).toContain(`<|im_start|>user\n<|vision_start|>${'<|image_pad|>'.repeat(n0)}<|vision_end|>`);
  expect(text0.endsWith('<|im_start|>assistant\n')).toBe(true);
  expect(pads(prompt)).toBe(n0);
  expect(fake.calls[0].keys).toEqual([{ seed: 9, step: 0, promptIndex: 0, sampleIndex: 0 }]);

  // Turn 1: a tool call, as Qwen writes it; the scripted model stops at </tool_call>.
  fake.script.push(['I will zoom in.\n<tool_call>\n{"name": "zoom_in", "arguments": {"cell": "B3"}}\n</tool_call><|im_end|>']);
  const [g1] = await s.generate([id], { maxNewTokens: 64, temperature: 0 });
  expect(g1.text).toBe('<think>I will zoom in.</think><tool_call>{"name":"zoom_in","arguments":{"cell":"B3"}}</tool_call>');
  expect(Array.from(g1.tokens)).toEqual(encode(g1.text));
  expect(Array.from(g1.logp)).toEqual(new Array(g1.tokens.length).fill(0));
  expect(g1.finishReason).toBe('stop_token');
  const gopt = fake.calls.find((c) => c.op === 'generate')!.options!;
  expect(gopt.stopTokens).toEqual(expect.arrayContaining([S.imEnd, S.endOfText, S.toolCallEnd]));
  expect(gopt.bannedTokens).toEqual(expect.arrayContaining([S.imStart, S.visionStart, 151656, 151935])); // control tokens, ids without text
  expect(gopt.bannedTokens).not.toEqual(expect.arrayContaining([S.imEnd]));
  expect(gopt.bannedTokens).not.toEqual(expect.arrayContaining([S.toolCall]));

  const r1 = await env.step(g1.tokens);
  expect(r1.terminated || r1.truncated).toBe(false);
  expect(r1.info.toolCalls[0]).toMatchObject({ name: 'zoom_in', ok: true });
  await s.append([{ id, input: { tokens: r1.observation.tokens, images: r1.observation.images } }]);
  const app = fake.calls.find((c) => c.op === 'append')!;
  const suffix = tok.decode(app.ids!);
  expect(suffix.startsWith('<|im_end|>\n<|im_start|>user\n<tool_response>\n')).toBe(true);
  expect(suffix.endsWith('\n</tool_response><|im_end|>\n<|im_start|>assistant\n')).toBe(true);
  expect(pads(app.ids!)).toBe(preprocessImage(r1.observation.images[0]).mergedTokens);

  // Everything the session holds = the conversation so far rendered and encoded at once.
  const messages: QwenMessage[] = [
    { role: 'system', content: QWEN_SYSTEM_PROMPT },
    { role: 'user', content: [{ type: 'image' }, { type: 'text', text: parseEnvPrompt(decode(obs.tokens)).question }] },
    { role: 'assistant', content: 'I will zoom in.\n<tool_call>\n{"name": "zoom_in", "arguments": {"cell": "B3"}}\n</tool_call>' },
    { role: 'tool', content: [{ type: 'text', text: parseEnvResponse(decode(r1.observation.tokens))[0].text }, { type: 'image' }] },
  ];
  const whole = applyChatTemplate(tok, messages, [n0, preprocessImage(r1.observation.images[0]).mergedTokens], { tools: TOOLS, template });
  expect(fake.held.get(id)!).toEqual(whole.ids);

  // Turn 2: the answer, ended by <|im_end|>.
  fake.script.push(['The lesion is in B3.\n<answer>B</answer><|im_end|>']);
  const [g2] = await s.generate([id], { maxNewTokens: 64 });
  expect(g2.text).toBe('<think>The lesion is in B3.</think><answer>B</answer>');
  expect(fake.held.get(id)!.at(-1)).toBe(S.imEnd);


  // medgym-space tokens: prompt, action, response, action — what the rollout records.
  expect(Array.from(s.tokens(id))).toEqual([...obs.tokens, ...g1.tokens, ...r1.observation.tokens, ...g2.tokens]);
  const r2 = await env.step(g2.tokens);
  expect(r2.terminated).toBe(true);
  expect(r2.info.answer?.status).toBe('ok');
  s.release([id]);
  expect(() => s.tokens(id)).toThrow(/unknown or released/);
  s.dispose();
});

test('tools banned: <tool_call> is banned; a turn ended by <|endoftext|> stands for <|im_end|>; forks keep their keys', async () => {
  const { obs } = await envAt(GENERATOR_ITEMS.evalItems(2)[1]);
  const fake = new ScriptedSession(tok);
  const s = new QwenEnvSession(spec(), fake, { seed: 3 });
  const [p] = await s.add([{ tokens: obs.tokens, images: obs.images, key: { step: 5, promptIndex: 2 } }]);
  const kids = await s.fork(p, 2, [{}, { seed: 11 }]);
  expect(fake.calls[1].keys).toEqual([
    { seed: 3, step: 5, promptIndex: 2, sampleIndex: 0 },
    { seed: 11, step: 5, promptIndex: 2, sampleIndex: 1 },
  ]);
  fake.script.push(['Looks like A<|endoftext|>', 'no idea']);
  const g = await s.generate(kids, { maxNewTokens: 4, bannedTokens: [TOOL_CALL_ID] });
  expect(fake.calls.at(-1)!.options!.bannedTokens).toContain(S.toolCall);
  expect(g.map((x) => x.finishReason)).toEqual(['stop_token', 'max_new_tokens']);
  expect(g[0].text).toBe('<think>Looks like A</think>');
  const response = encode('\n<tool_response>error: no tool call or answer found</tool_response>\nassistant: ');
  await s.append(kids.map((id) => ({ id, input: { tokens: response } })));
  const [a0, a1] = fake.calls.filter((c) => c.op === 'append').map((c) => tok.decode(c.ids!));
  expect(a0.startsWith('\n<|im_start|>user\n<tool_response>\nerror: no tool call')).toBe(true); // after the held <|endoftext|>
  expect(a1.startsWith('<|im_end|>\n<|im_start|>user\n<tool_response>\n')).toBe(true); // cut at max tokens: the template closes the turn
  expect(s.qwenText(kids[0])).toContain('Looks like A<|im_end|>\n<|im_start|>user');
  expect(() => s.qwenText(p)).not.toThrow(); // the parent stays usable
});

test('the Qwen context: a turn cut by it finishes with max_seq, a response that does not fit is not appended', async () => {
  const { obs } = await envAt(GENERATOR_ITEMS.evalItems(1)[0]);
  const fake = new ScriptedSession(tok);
  const [pid] = await new QwenEnvSession(spec(), fake).add([{ tokens: obs.tokens, images: obs.images }]);
  const promptLen = fake.held.get(pid)!.length;
  const s = new QwenEnvSession(spec({ maxSeq: promptLen + 3 }), fake);
  const [id] = await s.add([{ tokens: obs.tokens, images: obs.images }]);
  expect(fake.held.get(id)!.length).toBe(promptLen);
  fake.script.push(['one two three four five']);
  const [g] = await s.generate([id], { maxNewTokens: 10 });
  expect(fake.calls.at(-1)!.options!.maxNewTokens).toBe(3);
  expect(g.finishReason).toBe('max_seq');
  const [again] = await s.generate([id], { maxNewTokens: 10 });
  expect(again.tokens.length).toBe(0);
  expect(again.finishReason).toBe('max_seq');

  const t = new QwenEnvSession(spec({ maxSeq: promptLen + 20 }), fake);
  const [id2] = await t.add([{ tokens: obs.tokens, images: obs.images }]);
  fake.script.push(['Hmm']);
  await t.generate([id2], { maxNewTokens: 2 });
  const before = fake.held.get(id2)!.length;
  await t.append([{ id: id2, input: { tokens: encode('\n<tool_response>' + 'x'.repeat(200) + '</tool_response>\nassistant: ') } }]);
  expect(fake.held.get(id2)!.length).toBe(before);
  const [h] = await t.generate([id2], { maxNewTokens: 4 });
  expect(h.finishReason).toBe('max_seq');
  await expect(new QwenEnvSession(spec({ maxSeq: 10 }), fake).add([{ tokens: obs.tokens, images: obs.images }])).rejects.toThrow(/Qwen positions/);
});

test('a chat template that rewrites an earlier assistant turn is refused with a clear error', async () => {
  const { obs } = await envAt(GENERATOR_ITEMS.evalItems(1)[0]);
  const fake = new ScriptedSession(tok);
  const trimming = QWEN2_VL_TEMPLATE.replace("{{ message['content'] }}<|im_end|>", "{{ message['content'] | trim }}<|im_end|>");
  const s = new QwenEnvSession(spec({ render: { template: trimming } }), fake);
  const [id] = await s.add([{ tokens: obs.tokens, images: obs.images }]);
  fake.script.push(['  spaced out  ']);
  await s.generate([id], { maxNewTokens: 8 });
  const response = encode('\n<tool_response>error: no tool call or answer found</tool_response>\nassistant: ');
  await expect(s.append([{ id, input: { tokens: response } }])).rejects.toThrow(QwenEnvProtocolError);
  await expect(s.append([{ id, input: { tokens: response } }])).rejects.toThrow(/differs from what the Qwen session holds at character/);
  // Appending without an action first is a caller error.
  const [id2] = await s.add([{ tokens: obs.tokens, images: obs.images }]);
  await expect(s.append([{ id: id2, input: { tokens: response } }])).rejects.toThrow(/generated nothing/);
});

describe('with the tiny random checkpoint', () => {
  let policy: QwenEnvPolicy;
  beforeAll(async () => {
    policy = QwenEnvPolicy.create(await QwenVLModel.load(DIR), tok, { maxSeq: maxPositionEmbeddings(DIR) }); // as load(DIR) does, without loading the tokenizer again
  });
  afterAll(() => policy?.dispose());

  test('sizes: imageTokens of a 64-pixel view, maxSeq from config.json', () => {
    expect(policy.imageTokens).toBe(4 + 2); // 64 → 56 × 56: 4 × 4 patches, 2 × 2 merged, + vision start/end
    expect(policy.maxSeq).toBe(32768);
    expect(policy.canBanToolCalls).toBe(true);
  });

  test('rollout() runs 2 episodes to the end; evaluate() returns a result', async () => {
    const vec = makeVec(DEFAULT_ENV_ID, 4, { systemPrompt: '', maxTurns: 2, maxNewTokensPerTurn: 1 << 20, imageTokens: policy.imageTokens, maxTotalTokens: policy.maxSeq });
    try {
      const items = GENERATOR_ITEMS.evalItems(2);
      const ts = await rollout(policy, vec, { seed: 1, step: 0, items, groupSize: 1, temperature: 1, maxNewTokensPerTurn: 8 });
      expect(ts).toHaveLength(2);
      expect(ts.some((t) => t.turns === 2)).toBe(true); // an env response was appended and generated after
      for (const t of ts) {
        expect(t.tokens.length).toBe(t.mask.length);
        expect(t.oldLogp.length).toBe(t.tokens.length);
        expect(t.generated).toBe(t.mask.reduce((a, m) => a + m, 0));
        expect(t.turns).toBeGreaterThanOrEqual(1);
        expect(t.turns).toBeLessThanOrEqual(2);
        expect(t.images.length).toBeGreaterThanOrEqual(1);
        expect(Number.isFinite(t.reward)).toBe(true);
        expect(decode(t.tokens).startsWith('<|bos|>\nuser: <|image|>')).toBe(true);
      }
      const r = await evaluate(policy, vec, { label: 'tiny', items, samples: 2, temperature: 1, withoutTools: false, seed: 0, maxNewTokensPerTurn: 8 });
      expect(r).toMatchObject({ label: 'tiny', items: 2, samples: 2 });
      expect(r.withTools.passAtK).toHaveLength(2);
      expect(r.withTools.acc1).toBeGreaterThanOrEqual(0);
    } finally {
      vec.close();
    }
  });
});

test('medgym eval --model <dir> evaluates through the CLI (weights kept in bf16)', () => {
  const cfg = path.join(TMP, 'eval.json');
  fs.writeFileSync(cfg, JSON.stringify({ env: { maxTurns: 2, maxNewTokensPerTurn: 6 } }));
  const out = path.join(TMP, 'eval_out.json');
  const r = spawnSync(path.join(ROOT, 'node_modules/.bin/tsx'), [path.join(ROOT, 'src/cli/main.ts'), 'eval', '--model', DIR, '--config', cfg, '--items', '2', '--samples', '2', '--weights-dtype', 'bfloat16', '--decode-math', 'bf16', '--out', out], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  expect(r.stderr).toMatch(/Acc@1 .* \(with tools, 2 items\)\n.*\(without tools, 2 items\)/);
  expect(r.status).toBe(0);
  const j = JSON.parse(fs.readFileSync(out, 'utf8')) as { label: string; items: number; withTools: { passAtK: number[] } };
  expect(j).toMatchObject({ label: 'tiny-qwen2-vl', items: 2 });
  expect(j.withTools.passAtK).toHaveLength(2);
});

test('medgym eval takes --checkpoint or --model, and the env flags with --model only', async () => {
  await expect(evalAnyCommand({ checkpoint: 'x.safetensors', env: DEFAULT_ENV_ID })).rejects.toThrow(/--env: for --model only/);
  await expect(evalAnyCommand({ checkpoint: 'x.safetensors', model: DIR })).rejects.toThrow(/either --checkpoint <file> or --model <hf-dir>/);
  await expect(evalAnyCommand({})).rejects.toThrow(/either --checkpoint <file> or --model <hf-dir>/);
  await expect(evalAnyCommand({ model: DIR, viewSize: '7' })).rejects.toThrow(/--view-size/);
  await expect(evalAnyCommand({ model: DIR, weightsDtype: 'fp16' })).rejects.toThrow(/auto, bfloat16, float32 for --weights-dtype but received "fp16"/);
  await expect(evalAnyCommand({ model: DIR, decodeMath: 'fast' })).rejects.toThrow(/exact, bf16 for --decode-math but received "fast"/);
  await expect(evalAnyCommand({ checkpoint: 'x.safetensors', weightsDtype: 'bfloat16' })).rejects.toThrow(/--weights-dtype: for --model only/);
});
