// `medgym serve` throughput: what continuous batching buys. A `small` medgym-vlm (11M, random init)
// behind the OpenAI-compatible server; R requests, each a prompt with one view and NEW_TOKENS
// sampled tokens (no stop tokens, so every request decodes the same length). Rows: the same
// generation in-process (one session, all R sequences in one generate() call: the ceiling), the
// server with all R requests in flight at once (batched), and the server with one request at a time
// (what a server without batching does). tokens/s = generated tokens over wall time; latency is a
// request's, as the client (the official openai package) sees it. The three rows alternate for
// ROUNDS rounds and each keeps its best (the machine is shared and noisy).
// Not part of the test suite: npx tsx bench/openai_serve.ts
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import sharp from 'sharp';
import { NativePolicy } from '../src/policy';
import { createOpenAIServer } from '../src/server/openai/server';
import { encode, IMAGE_ID } from '../src/tokenizer';
import type { ViewImage } from '../src/tools/image';
import { fmt, machineLine } from './harness';

const REQUESTS = Number(process.env.SERVE_REQUESTS ?? 16);
const NEW_TOKENS = Number(process.env.SERVE_NEW_TOKENS ?? 64);
const ROUNDS = Number(process.env.SERVE_ROUNDS ?? 3);

interface Row {
  name: string;
  tokens: number;
  seconds: number;
  p50?: number;
}

function view(k: number, size: number): ViewImage {
  const data = new Uint8Array(size * size * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + k * 17) & 255;
  return { data, width: size, height: size, channels: 3 };
}

const question = (k: number): string => `Which quadrant holds the finding? (request ${k})\nA. upper left\nB. upper right\nC. lower left\nD. lower right`;

async function main(): Promise<void> {
  const policy = NativePolicy.create('small', { seed: 1 });
  const size = policy.config.imageSize;
  const params = policy.numParams; // the server disposes the policy when it closes
  const views = Array.from({ length: REQUESTS }, (_, k) => view(k, size));

  // In-process ceiling: the SPEC §3 prompt the server renders for the same messages.
  const prompts = views.map((v, k) => ({ tokens: [...encode('<|bos|>You look at images.\nuser: '), IMAGE_ID, ...encode(`\n${question(k)}\nassistant: `)], images: [v], key: { seed: 7, promptIndex: k } }));
  const local = async (): Promise<number> => {
    const s = policy.createSession();
    try {
      const ids = await s.add(prompts);
      const out = await s.generate(ids, { maxNewTokens: NEW_TOKENS, temperature: 1, stopTokens: [] });
      return out.reduce((n, o) => n + o.tokens.length, 0);
    } finally {
      s.dispose();
    }
  };
  const server = createOpenAIServer({ policy, name: 'small', maxBatch: Math.max(32, REQUESTS) });
  await server.app.listen({ host: '127.0.0.1', port: 0 });
  const port = (server.app.server.address() as AddressInfo).port;
  const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 600_000 });
  const urls = await Promise.all(views.map(async (v) => `data:image/png;base64,${(await sharp(Buffer.from(v.data), { raw: { width: size, height: size, channels: 3 } }).png().toBuffer()).toString('base64')}`));
  const ask = async (k: number): Promise<{ tokens: number; ms: number }> => {
    const t = performance.now();
    const r = await client.chat.completions.create({
      model: 'small',
      messages: [
        { role: 'system', content: 'You look at images.' },
        { role: 'user', content: [{ type: 'image_url', image_url: { url: urls[k] } }, { type: 'text', text: question(k) }] },
      ],
      max_tokens: NEW_TOKENS,
      temperature: 1,
      // @ts-expect-error medgym / vLLM extensions the openai types do not list
      stop_token_ids: [],
      medgym_sample_key: { seed: 7, prompt_index: k },
    });
    return { tokens: r.usage?.completion_tokens ?? 0, ms: performance.now() - t };
  };
  const measures: (() => Promise<Row>)[] = [
    async () => {
      const t = performance.now();
      const tokens = await local();
      return { name: `in-process, one generate() of ${REQUESTS} sequences`, tokens, seconds: (performance.now() - t) / 1000 };
    },
    async () => {
      const t = performance.now();
      const all = await Promise.all(Array.from({ length: REQUESTS }, (_, k) => ask(k)));
      return { name: `medgym serve, ${REQUESTS} requests in flight (batched)`, tokens: all.reduce((n, r) => n + r.tokens, 0), seconds: (performance.now() - t) / 1000, p50: median(all.map((r) => r.ms)) };
    },
    async () => {
      const t = performance.now();
      const all: { tokens: number; ms: number }[] = [];
      for (let k = 0; k < REQUESTS; k++) all.push(await ask(k));
      return { name: 'medgym serve, one request at a time', tokens: all.reduce((n, r) => n + r.tokens, 0), seconds: (performance.now() - t) / 1000, p50: median(all.map((r) => r.ms)) };
    },
  ];
  const best: (Row | undefined)[] = measures.map(() => undefined);
  try {
    await measures[0]();
    await measures[1](); // warm-up
    for (let round = 0; round < ROUNDS; round++) {
      for (const [i, m] of measures.entries()) {
        const r = await m();
        if (!best[i] || r.seconds < best[i]!.seconds) best[i] = r;
      }
    }
  } finally {
    await server.close('abort');
  }
  const rows = best as Row[];
  console.log(`\n${machineLine()}; medgym-vlm small (${(params / 1e6).toFixed(1)}M), ${REQUESTS} requests × ${NEW_TOKENS} new tokens, one ${size}×${size} view each, τ = 1\n`);
  console.log('| setup | tokens | s | tokens/s | p50 request ms |');
  console.log('|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.name} | ${r.tokens} | ${fmt(r.seconds)} | ${fmt(r.tokens / r.seconds)} | ${r.p50 === undefined ? '' : fmt(r.p50)} |`);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
