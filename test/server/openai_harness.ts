// What the `medgym serve` tests share: a small medgym-vlm checkpoint written to a temp file, servers
// loading it on 127.0.0.1 port 0 (closed after the file), the official `openai` client pointed at
// them, and PNG data URIs of random views; for `--model`, Qwen directories over the tiny fixtures.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import sharp from 'sharp';
import { NativePolicy, type PolicyConfig } from '../../src/policy';
import { QwenServedModel, type QwenServeOptions } from '../../src/server/openai/qwen_model';
import { createOpenAIServer, type OpenAIServer, type OpenAIServerOptions } from '../../src/server/openai/server';
import type { ViewImage } from '../../src/tools/image';
import { Rng } from '../helpers/random';

/** d 32, 2 layers, 16×16 RGB views of 8×8 patches (N_p 4), 256 positions: fast. */
export const SERVE_CONFIG: Partial<PolicyConfig> = { dModel: 32, nLayer: 2, nHead: 4, maxSeq: 256, patch: 8, imageSize: 16, channels: 3 };

/** A checkpoint in a fresh temp dir (GPT-2 init: sampling spreads over the vocabulary; or `prepare`'s weights). */
export async function writeCheckpoint(seed: number, prepare?: (p: NativePolicy) => Promise<void>, config: Partial<PolicyConfig> = {}): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-serve-'));
  const file = path.join(dir, 'tiny-vlm.safetensors');
  const p = NativePolicy.create({ ...SERVE_CONFIG, ...config }, { seed });
  try {
    if (prepare) await prepare(p);
    await p.save(file);
  } finally {
    p.dispose();
  }
  return file;
}

export interface Served {
  server: OpenAIServer;
  port: number;
  baseURL: string;
  client: OpenAI;
}

/** Starts servers on the checkpoint; all are closed after the test file. */
export function useOpenAIServers(): (file: string, opts?: Partial<OpenAIServerOptions> & { apiKey?: string }) => Promise<Served> {
  const open: OpenAIServer[] = [];
  afterAll(async () => {
    await Promise.all(open.splice(0).map((s) => s.close('abort')));
  });
  return async (file, opts = {}) => {
    const policy = await NativePolicy.load(file);
    const server = createOpenAIServer({ name: 'tiny-vlm', ...opts, policy });
    open.push(server);
    await server.app.listen({ host: '127.0.0.1', port: 0 });
    const port = (server.app.server.address() as AddressInfo).port;
    const baseURL = `http://127.0.0.1:${port}/v1`;
    const client = new OpenAI({ baseURL, apiKey: opts.apiKey ?? opts.token ?? 'unused', maxRetries: 0, timeout: 30_000 });
    return { server, port, baseURL, client };
  };
}

export function randomViewOf(rng: Rng, size = 16, channels: 1 | 3 = 3): ViewImage {
  const data = new Uint8Array(size * size * channels);
  for (let i = 0; i < data.length; i++) data[i] = rng.int(0, 256);
  return { data, width: size, height: size, channels };
}

/** A view as a PNG data URI (lossless: the server decodes exactly these pixels). */
export async function pngDataUri(v: ViewImage): Promise<string> {
  let img = sharp(Buffer.from(v.data), { raw: { width: v.width, height: v.height, channels: v.channels } });
  if (v.channels === 1) img = img.toColourspace('b-w');
  return `data:image/png;base64,${(await img.png().toBuffer()).toString('base64')}`;
}

// ---- Qwen2-VL / Qwen2.5-VL (`medgym serve --model`) ----

/** The tiny random-weight Qwen checkpoints (512 ids: 0–495 text, 496– the family's added tokens). */
export const QWEN_FIXTURES = {
  qwen2_vl: path.resolve(__dirname, '../fixtures/qwen2_vl_tiny'),
  qwen2_5_vl: path.resolve(__dirname, '../fixtures/qwen2_5_vl_tiny'),
} as const;

/** The added tokens at the fixtures' ids (config.json: bos 496, eos 498, vision 505–509). */
const QWEN_ADDED = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|object_ref_start|>', '<|object_ref_end|>', '<|box_start|>', '<|box_end|>', '<|quad_start|>', '<|quad_end|>', '<|vision_start|>', '<|vision_end|>', '<|vision_pad|>', '<|image_pad|>', '<|video_pad|>'];
const QWEN_ADDED_FROM = 496;

/** GPT-2's byte → printable character map (byte-level BPE). */
function byteChars(): string[] {
  const keep = new Set<number>();
  for (const [a, b] of [[33, 126], [161, 172], [174, 255]]) for (let i = a; i <= b; i++) keep.add(i);
  let extra = 0;
  return Array.from({ length: 256 }, (_, b) => String.fromCharCode(keep.has(b) ? b : 256 + extra++));
}

/**
 * A byte-level BPE tokenizer.json over the fixtures' 512 ids: the 256 bytes, merges of frequent
 * letter pairs up to 496, the family's control tokens from 496; with `toolTokens` (Qwen2.5's
 * vocabulary) <tool_call> and </tool_call> are added tokens 510 and 511, else two more merges.
 */
export function tinyQwenTokenizerJson(toolTokens: boolean): Record<string, unknown> {
  const chars = byteChars();
  const vocab: Record<string, number> = {};
  chars.forEach((c, id) => (vocab[c] = id));
  const letters = ['Ġ', ...'etaoinsrhldcumfpgwybvk'];
  const merges: string[] = [];
  const freeIds = [...Array.from({ length: QWEN_ADDED_FROM - 256 }, (_, k) => 256 + k), ...(toolTokens ? [] : [510, 511])];
  outer: for (const a of letters) {
    for (const b of letters.slice(1)) {
      const id = freeIds[merges.length];
      if (id === undefined) break outer;
      vocab[a + b] = id;
      merges.push(`${a} ${b}`);
    }
  }
  const added = QWEN_ADDED.map((content, k) => ({ id: QWEN_ADDED_FROM + k, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  if (toolTokens) for (const [k, content] of ['<tool_call>', '</tool_call>'].entries()) added.push({ id: 510 + k, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: false });
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true };
  return { version: '1.0', normalizer: null, pre_tokenizer: byteLevel, post_processor: null, decoder: byteLevel, model: { type: 'BPE', vocab, merges, dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false }, added_tokens: added };
}

/** A temp model directory: the fixture's files linked in, plus a tokenizer over its ids and Qwen2-VL's processor chat template. */
export function qwenModelDir(fixture: string, toolTokens: boolean, template: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-serve-qwen-'));
  for (const f of fs.readdirSync(fixture)) if (/\.(safetensors|json)$/.test(f) && !['expected.json', 'inputs.safetensors'].includes(f)) fs.symlinkSync(path.join(fixture, f), path.join(dir, f));
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tinyQwenTokenizerJson(toolTokens)));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|im_end|>', pad_token: '<|endoftext|>', bos_token: null, model_max_length: 4096 }));
  fs.writeFileSync(path.join(dir, 'chat_template.json'), JSON.stringify({ chat_template: template }));
  return dir;
}

/** Starts servers on Qwen model directories (QwenServedModel.load); all are closed after the test file. */
export function useQwenServers(): (dir: string, opts?: Partial<OpenAIServerOptions> & QwenServeOptions) => Promise<Served> {
  const open: OpenAIServer[] = [];
  afterAll(async () => {
    await Promise.all(open.splice(0).map((s) => s.close('abort')));
  });
  return async (dir, opts = {}) => {
    const { viewSize, maxSeq, render, load, ...serverOpts } = opts;
    const model = await QwenServedModel.load(dir, { viewSize, maxSeq, render, load });
    const server = createOpenAIServer({ name: 'tiny-qwen', ...serverOpts, model });
    open.push(server);
    await server.app.listen({ host: '127.0.0.1', port: 0 });
    const port = (server.app.server.address() as AddressInfo).port;
    const baseURL = `http://127.0.0.1:${port}/v1`;
    const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0, timeout: 60_000 });
    return { server, port, baseURL, client };
  };
}
