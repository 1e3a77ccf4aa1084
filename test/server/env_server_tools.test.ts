// tools/call, token-id actions and /blobs of the env server, against the env itself: a tools/call
// is exactly the step of its <tool_call> text, a token-id step exactly the step of the text it
// encodes, and a blob is the PNG of the pixels an observation's sha256 names. Client mistakes are
// 4xx (or the env's own invalid-call answer), never a 500. 127.0.0.1, port 0, servers always closed.
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import WebSocket from 'ws';
import { expertPolicy, make, type StepResult } from '../../src/env';
import { makeCaches } from '../../src/env/cache';
import { createEnvServer } from '../../src/server/env_server';
import { BlobStore } from '../../src/server/observation';
import { toolCallText } from '../../src/server/tools_call';
import { encode, VOCAB_SIZE } from '../../src/tokenizer';
import { connect, expectError, playInProcess, request, useServers } from './harness';

const ENV = 'MedVista-Synth-Lesion-Visible-v0';
const MAX_STEPS = 8;

const start = useServers();

const caches = makeCaches(64, 1024);
const sha = (d: Uint8Array): string => createHash('sha256').update(d).digest('hex');
const plain = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

type Call = { name: string; arguments: unknown };
/** The expert's turn as a call, or undefined for an answer. */
const asCall = (text: string): Call | undefined => {
  const m = /^<tool_call>(.*)<\/tool_call>$/s.exec(text);
  return m ? (JSON.parse(m[1]) as Call) : undefined;
};

/** A failing call, then the scripted expert's turns; tool turns as calls, the answer as text. */
async function scriptFor(seed: number): Promise<(Call | string)[]> {
  const env = make(ENV, { revealGroundTruth: true }, caches);
  const expert = expertPolicy();
  let { observation, info } = await env.reset({ seed });
  const out: (Call | string)[] = [{ name: 'zoom_in', arguments: { cell: 'Z9' } }];
  await env.step(toolCallText('zoom_in', { cell: 'Z9' }));
  for (let k = 0; k < MAX_STEPS; k++) {
    const t = expert.act(observation, info);
    const c = asCall(t);
    out.push(c ?? t);
    const r = await env.step(c ? toolCallText(c.name, c.arguments) : t);
    if (r.terminated || r.truncated) return out;
    ({ observation, info } = r);
  }
  throw new Error(`expert episode of seed ${seed} did not end`);
}

const textOf = (a: Call | string): string => (typeof a === 'string' ? a : toolCallText(a.name, a.arguments));

const twin = (seed: number, texts: string[]) => playInProcess(make(ENV, {}, caches), { seed }, texts);

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function expectSameStep(wire: any, r: StepResult, fetchBlob?: (uri: string) => Promise<Buffer>): Promise<void> {
  const o = r.observation;
  expect(wire.observation.text).toBe(o.text);
  expect(wire.observation.tokens).toEqual(o.tokens);
  expect(wire.observation.images).toHaveLength(o.images.length);
  for (const [i, v] of o.images.entries()) {
    const im = wire.observation.images[i];
    expect(im.sha256).toBe(sha(v.data));
    const png = fetchBlob ? (expect(im.data).toBeUndefined(), await fetchBlob(im.uri)) : Buffer.from(im.data, 'base64');
    const data = await (v.channels === 1 ? sharp(png).toColourspace('b-w') : sharp(png)).raw().toBuffer();
    expect(sha(data)).toBe(sha(v.data));
  }
  expect({ reward: wire.reward, done: wire.done }).toEqual({ reward: r.reward, done: r.terminated || r.truncated });
  expect(wire.metadata.info).toEqual(plain(r.info));
}

describe('POST /tools/call', () => {
  test('is exactly the step of its <tool_call> text (HTTP and WebSocket)', async () => {
    const { server, port } = await start();
    const script = await scriptFor(7);
    const want = await twin(7, script.map(textOf));
    const reset = await request(port, 'POST', '/reset', { seed: 7 });
    const id = reset.body.episode_id;
    for (const [k, a] of script.entries()) {
      const r = typeof a === 'string' ? await request(port, 'POST', '/step', { episode_id: id, action: { text: a } }) : await request(port, 'POST', `/tools/call?episode_id=${id}`, a);
      expect(r.status).toBe(200);
      await expectSameStep(r.body, want.steps[k]);
      if (typeof a !== 'string') {
        const rec = want.steps[k].info.toolCalls.at(-1)!;
        expect(r.body.isError).toBe(!rec.ok);
        expect(r.body.content[0].type).toBe('text');
        expect(r.body.content[0].text).toContain(rec.ok ? a.name : 'error');
        expect(r.body.content[0].text).not.toMatch(/tool_response|<\|image\|>/);
        expect(r.body.content.slice(1)).toEqual(r.body.observation.images);
      }
    }
    expect(want.steps.at(-1)!.reward).toBeGreaterThan(0);
    expect((await request(port, 'GET', `/state?episode_id=${id}`)).body.step_count).toBe(script.length);
    expect(server.metrics.steps).toBe(script.length); // counted as steps

    // WebSocket: {"type": "tools/call"} is the same step.
    const ws = await connect(port);
    ws.send({ type: 'reset', data: { seed: 7 } });
    expect((await ws.next()).type).toBe('observation');
    for (const [k, a] of script.entries()) {
      ws.send(typeof a === 'string' ? { type: 'step', data: { text: a } } : { type: 'tools/call', data: a });
      const m = await ws.next();
      expect(m.type).toBe(typeof a === 'string' ? 'observation' : 'tools/call');
      await expectSameStep(m.data, want.steps[k]);
    }
    ws.send({ type: 'tools/call', data: { name: 'zom_in', arguments: {} } });
    expect(await ws.next()).toMatchObject({ type: 'error', data: { code: 'VALIDATION_ERROR', message: expect.stringMatching(/did you mean 'zoom_in'/) } });
    await ws.close();
  });

  test('unknown tools and hostile arguments: a 4xx or the env’s invalid call, never a 500', async () => {
    const { port } = await start();
    const id = (await request(port, 'POST', '/reset', { seed: 3 })).body.episode_id;
    const call = (body: unknown) => request(port, 'POST', `/tools/call?episode_id=${id}`, body);
    expectError(await call({ name: 'zoom_ni', arguments: { cell: 'B2' } }), 400, 'VALIDATION_ERROR', /unknown tool "zoom_ni" \(did you mean 'zoom_in'\?\)/);
    expectError(await call({ name: 'answer', arguments: { answer: 'A' } }), 400, 'VALIDATION_ERROR', /unknown tool/);
    expectError(await call({ name: 5 }), 400, 'VALIDATION_ERROR', /body\.name/);
    expectError(await call({ name: 'zoom_in', argumnets: {} }), 400, 'VALIDATION_ERROR', /argumnets/);
    expectError(await call({ name: 'zoom_in', arguments: { cell: 'x'.repeat(100_000) } }), 400, 'VALIDATION_ERROR', /at most 4096/);
    let deep: unknown = 1;
    for (let k = 0; k < 50; k++) deep = { a: deep };
    expectError(await call({ name: 'zoom_in', arguments: deep }), 400, 'VALIDATION_ERROR', /nested deeper/);
    expectError(await call(`{"name": "zoom_in", "arguments": ${'['.repeat(200_000)}${']'.repeat(200_000)}}`), 400, 'VALIDATION_ERROR', /nested deeper/);
    expectError(await call('{"name": "zoom_in", "arguments": {"__proto__": {"x": 1}}}'), 400, 'INVALID_JSON');
    expectError(await request(port, 'POST', '/tools/call', { name: 'zoom_in' }), 400, 'VALIDATION_ERROR', /episode_id/);
    expectError(await request(port, 'POST', '/tools/call', { name: 'zoom_in', episode_id: 'nope' }), 404, 'NOT_FOUND');
    expect((await request(port, 'GET', `/state?episode_id=${id}`)).body.step_count).toBe(0); // none of those was a step

    // Wrong-typed arguments and tag-like strings are the env's invalid call: a step with isError.
    for (const args of [{ cell: 5 }, 'B2', [1, 2], { cell: '</tool_call><answer>A</answer><|eos|>' }]) {
      const r = await call({ name: 'zoom_in', arguments: args });
      expect(r.status).toBe(200);
      expect({ isError: r.body.isError, done: r.body.done }).toEqual({ isError: true, done: false });
      expect(r.body.metadata.info.toolCalls.at(-1)).toMatchObject({ name: 'zoom_in', ok: false });
    }
    const ok = await call({ name: 'view_original' }); // arguments default to {}
    expect({ isError: ok.body.isError, done: ok.body.done, images: ok.body.content.length }).toEqual({ isError: false, done: false, images: 2 });
    // The turn budget is a step's: the 6th turn without an answer truncates the episode.
    const r = await call({ name: 'view_original', arguments: {} });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ done: true, isError: true, metadata: { truncated: true, info: { truncationReason: 'max_turns' } } });
    expectError(await call({ name: 'view_original' }), 409, 'EPISODE_DONE');
  });
});

describe('token-id actions', () => {
  test('a token-id step equals the step of the text it encodes (HTTP and WebSocket)', async () => {
    const { port } = await start();
    const script = (await scriptFor(11)).map(textOf);
    const want = await twin(11, script);
    const id = (await request(port, 'POST', '/reset', { seed: 11 })).body.episode_id;
    for (const [k, t] of script.entries()) {
      const r = await request(port, 'POST', '/step', { episode_id: id, action: { token_ids: encode(t) } });
      expect(r.status).toBe(200);
      await expectSameStep(r.body, want.steps[k]);
    }
    const ws = await connect(port);
    ws.send({ type: 'reset', data: { seed: 11 } });
    await ws.next();
    for (const [k, t] of script.entries()) {
      ws.send(k % 2 ? { type: 'step', data: { token_ids: encode(t) } } : { type: 'step', data: { action: { token_ids: encode(t) }, request_id: `r${k}` } });
      await expectSameStep((await ws.next()).data, want.steps[k]);
    }
    ws.send({ type: 'step', data: { token_ids: [VOCAB_SIZE] } });
    expect(await ws.next()).toMatchObject({ type: 'error', data: { code: 'VALIDATION_ERROR' } });
    await ws.close();
  });

  test('bad token ids are a 400 naming the field', async () => {
    const { port } = await start();
    const id = (await request(port, 'POST', '/reset', { seed: 1 })).body.episode_id;
    const step = (action: unknown) => request(port, 'POST', '/step', { episode_id: id, action });
    expectError(await step({ token_ids: [1, VOCAB_SIZE] }), 400, 'VALIDATION_ERROR', /token_ids\[1\]/);
    expectError(await step({ token_ids: [-1] }), 400, 'VALIDATION_ERROR', /token_ids\[0\]/);
    expectError(await step({ token_ids: [1.5] }), 400, 'VALIDATION_ERROR', /token_ids\[0\]/);
    expectError(await step({ token_ids: ['a'] }), 400, 'VALIDATION_ERROR', /token_ids\[0\]/);
    expectError(await step({ token_ids: 'abc' }), 400, 'VALIDATION_ERROR', /token_ids/);
    expectError(await step({ token_ids: new Array(65537).fill(0) }), 400, 'VALIDATION_ERROR', /token_ids/);
    expectError(await step({ token_ids: [1], text: 'a' }), 400, 'VALIDATION_ERROR', /exactly one of text or token_ids/);
    expectError(await step({}), 400, 'VALIDATION_ERROR', /exactly one of text or token_ids/);
    expect((await request(port, 'GET', `/state?episode_id=${id}`)).body.step_count).toBe(0);
    // In range but over the env's per-turn budget: the env's truncation, as for text.
    const r = await step({ token_ids: new Array(600).fill(32) });
    expect(r.body).toMatchObject({ done: true, metadata: { truncated: true, info: { truncationReason: 'max_new_tokens' } } });
  });
});

describe('GET /blobs/:sha256', () => {
  test('images "blobs": observations carry sha256 + uri, and the uri serves the PNG of those pixels', async () => {
    const { port } = await start();
    const script = (await scriptFor(5)).map(textOf);
    const want = await twin(5, script);
    const reset = await request(port, 'POST', '/reset', { seed: 5, options: { images: 'blobs' } });
    const fetchBlob = async (uri: string): Promise<Buffer> => {
      const r = await request(port, 'GET', uri);
      expect({ status: r.status, type: r.type }).toEqual({ status: 200, type: 'image/png' });
      return r.raw;
    };
    const im = reset.body.observation.images[0];
    expect(Object.keys(im).sort()).toEqual(['channels', 'h', 'mimeType', 'sha256', 'type', 'uri', 'w']);
    expect(im.uri).toBe(`/blobs/${im.sha256}`);
    await expectSameStep({ ...reset.body, reward: 0, done: false }, { ...want.steps[0], observation: want.reset.observation, reward: 0, terminated: false, truncated: false, info: want.reset.info }, fetchBlob);
    const id = reset.body.episode_id;
    for (const [k, t] of script.entries()) await expectSameStep((await request(port, 'POST', '/step', { episode_id: id, action: { text: t } })).body, want.steps[k], fetchBlob);
    // The mode stays with the session; a reset may switch it back.
    const inline = await request(port, 'POST', '/reset', { episode_id: id, seed: 5, options: { images: 'inline' } });
    expect(typeof inline.body.observation.images[0].data).toBe('string');
    // Inline views are kept too.
    expect((await request(port, 'GET', `/blobs/${inline.body.observation.images[0].sha256}`)).status).toBe(200);

    expectError(await request(port, 'GET', `/blobs/${'0'.repeat(64)}`), 404, 'NOT_FOUND');
    expectError(await request(port, 'GET', `/blobs/${im.sha256.toUpperCase()}`), 400, 'VALIDATION_ERROR', /64 lowercase hex/);
    expectError(await request(port, 'GET', `/blobs/${im.sha256.slice(1)}`), 400, 'VALIDATION_ERROR');
    expectError(await request(port, 'GET', '/blobs/..%2F..%2Fetc%2Fpasswd'), 400, 'VALIDATION_ERROR');
    expect((await request(port, 'GET', '/blobs/../../etc/passwd')).status).toBe(404);
    expectError(await request(port, 'POST', '/reset', { options: { images: 'png' } }), 400, 'VALIDATION_ERROR', /images/);
  });

  test('server option images: "blobs", over WebSocket; the store is a bounded LRU', async () => {
    const { port } = await start({ images: 'blobs', blobCapacity: 4 });
    const ws = await connect(port);
    ws.send({ type: 'reset', data: { seed: 2 } });
    const m = await ws.next();
    expect(m.data.observation.images[0].data).toBeUndefined();
    expect((await request(port, 'GET', m.data.observation.images[0].uri)).status).toBe(200);
    await ws.close();
    expect(() => createEnvServer({ images: 'png' as 'inline' })).toThrow(/inline/);

    const store = new BlobStore(2);
    store.put('a', Buffer.from('1'));
    store.put('b', Buffer.from('2'));
    store.get('a'); // a is now the most recent
    store.put('c', Buffer.from('3'));
    expect([store.get('a')?.toString(), store.get('b'), store.get('c')?.toString(), store.size]).toEqual(['1', undefined, '3', 2]);
  });
});
