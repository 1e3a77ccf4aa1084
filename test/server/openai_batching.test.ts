// Continuous batching in `medgym serve`: one-token steps give what one generate() call gives, a
// request gets the same tokens alone or among 16 concurrent ones (with fewer batch slots than
// requests, so some wait), a client that disconnects frees its sequences, and close() finishes or
// aborts what is in flight.
import * as http from 'node:http';
import { NativePolicy } from '../../src/policy';
import { renderMedgymChat } from '../../src/policy/openai/medgym_chat';
import { Rng } from '../helpers/random';
import { request } from './harness';
import { pngDataUri, randomViewOf, useOpenAIServers, writeCheckpoint } from './openai_harness';

/* eslint-disable @typescript-eslint/no-explicit-any -- medgym's extensions are not in the client's types */

describe('medgym serve: continuous batching', () => {
  const start = useOpenAIServers();
  const rng = new Rng(8);
  let file: string;
  let long: string; // 1024 positions: generations that outlast the client or the server
  let uris: string[];
  beforeAll(async () => {
    file = await writeCheckpoint(2);
    long = await writeCheckpoint(3, undefined, { maxSeq: 1024 });
    uris = await Promise.all([0, 1, 2, 3].map(() => pngDataUri(randomViewOf(rng))));
  });

  test('one-token generate steps give exactly the tokens and logp of one generate() call (same key)', async () => {
    const policy = await NativePolicy.load(file);
    const tokens = renderMedgymChat([{ role: 'user', content: 'step by step' }]).tokens;
    const key = { seed: 5, step: 3, promptIndex: 1, sampleIndex: 2, counter: 4 };
    const opts = { temperature: 1, stopTokens: [] as number[] };
    const s = policy.createSession();
    const [a, b] = await s.add([{ tokens, key }, { tokens, key }]);
    const [whole] = await s.generate([a], { ...opts, maxNewTokens: 40 });
    const stepped: number[] = [];
    const logp: number[] = [];
    for (let k = 0; k < 40; k++) {
      const [o] = await s.generate([b], { ...opts, maxNewTokens: 1 });
      stepped.push(...o.tokens);
      logp.push(...o.logp);
    }
    s.dispose();
    policy.dispose();
    expect(stepped).toEqual(Array.from(whole.tokens));
    expect(logp).toEqual(Array.from(whole.logp));
  });

  /** 16 different requests: text and images, greedy and sampled, top-p, n = 2, stop strings, streamed or not. */
  const requests = (): Record<string, any>[] =>
    Array.from({ length: 16 }, (_, i) => ({
      model: 'tiny-vlm',
      messages: [
        { role: 'system', content: `case ${i}` },
        { role: 'user', content: i % 3 === 0 ? `question ${i}` : [{ type: 'image_url', image_url: { url: uris[i % 4] } }, { type: 'text', text: `what is ${i}?` }] },
      ],
      temperature: i % 4 === 0 ? 0 : 1,
      top_p: i % 5 === 0 ? 0.8 : 1,
      max_tokens: 8 + (i % 7) * 3,
      n: i % 6 === 1 ? 2 : 1,
      ...(i % 7 === 2 ? { stop: ['e', 'a'] } : {}),
      seed: 100 + i,
      return_token_ids: true,
      stream: i % 4 === 3,
    }));

  async function run(client: any, body: Record<string, any>): Promise<{ ids: number[][]; text: string[] }> {
    if (!body.stream) {
      const r = await client.chat.completions.create(body);
      return { ids: r.choices.map((c: any) => c.token_ids), text: r.choices.map((c: any) => c.message.content) };
    }
    const ids: number[][] = Array.from({ length: body.n }, () => []);
    const text: string[] = Array.from({ length: body.n }, () => '');
    for await (const c of await client.chat.completions.create(body)) {
      for (const ch of c.choices) {
        ids[ch.index].push(...(ch.token_ids ?? []));
        text[ch.index] += ch.delta.content ?? '';
      }
    }
    return { ids, text };
  }

  test('16 concurrent requests each get their solo answer (8 batch slots: some wait and join between steps)', async () => {
    const { client, server } = await start(file, { maxBatch: 8 });
    const solo = [];
    for (const body of requests()) solo.push(await run(client, body));
    let peak = 0;
    const timer = setInterval(() => (peak = Math.max(peak, server.scheduler.stats.sequences)), 1);
    const together = await Promise.all(requests().map((body) => run(client, body)));
    clearInterval(timer);
    expect(together).toEqual(solo);
    expect(solo.every((r) => r.ids.every((ids) => ids.length > 0))).toBe(true);
    expect(peak).toBeGreaterThan(1);
    expect(peak).toBeLessThanOrEqual(8);
    expect(server.scheduler.stats).toEqual({ waiting: 0, active: 0, sequences: 0, cancelled: 0 });
  });

  test('a client that disconnects mid-stream cancels its request and frees its sequences', async () => {
    const { port, server } = await start(long, { maxBatch: 16 });
    // 16 choices of ~1000 tokens, <|eos|> banned: far longer than the client stays.
    const body = JSON.stringify({ model: 'tiny-vlm', messages: [{ role: 'user', content: 'long' }], n: 16, stop_token_ids: [], logit_bias: { 257: -100 }, stream: true });
    await new Promise<void>((resolve) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json' } }, (res) => {
        let chunks = 0;
        res.on('data', () => {
          if (++chunks === 3) {
            req.destroy();
            resolve();
          }
        });
      });
      req.on('error', () => undefined);
      req.end(body);
    });
    for (let k = 0; k < 400 && server.scheduler.stats.active > 0; k++) await new Promise((r) => setTimeout(r, 5));
    expect(server.scheduler.stats).toEqual({ waiting: 0, active: 0, sequences: 0, cancelled: 1 });
    const h = await request(port, 'GET', '/health');
    expect(h.body).toEqual({ status: 'healthy', model: 'tiny-vlm', waiting: 0, active: 0, sequences: 0, cancelled: 1 });
  });

  test("close('finish') lets in-flight requests complete; close('abort') ends them with a 503", async () => {
    const a = await start(file);
    const body = { model: 'tiny-vlm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 100, stop_token_ids: [], logit_bias: { 257: -100 } };
    const pending = request(a.port, 'POST', '/v1/chat/completions', body);
    while (a.server.scheduler.stats.sequences === 0) await new Promise((r) => setTimeout(r, 1));
    await a.server.close('finish');
    const done = await pending;
    expect(done.status).toBe(200);
    expect(done.body.choices[0].finish_reason).toBe('length');

    const b = await start(long);
    const cut = request(b.port, 'POST', '/v1/chat/completions', { ...body, max_tokens: 1000, n: 8 });
    while (b.server.scheduler.stats.sequences === 0) await new Promise((r) => setTimeout(r, 1));
    await b.server.close('abort');
    const aborted = await cut;
    expect(aborted.status).toBe(503);
    expect(aborted.body.error).toMatchObject({ type: 'server_error', code: 'shutting_down' });
  });
});
