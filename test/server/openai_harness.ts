// What the `medgym serve` tests share: a small medgym-vlm checkpoint written to a temp file, servers
// loading it on 127.0.0.1 port 0 (closed after the file), the official `openai` client pointed at
// them, and PNG data URIs of random views.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import sharp from 'sharp';
import { NativePolicy, type PolicyConfig } from '../../src/policy';
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
