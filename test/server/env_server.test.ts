// The env server against the env itself: every episode driven over HTTP or WebSocket must equal
// the same env driven in-process (same seed, same action texts), and every client mistake must be
// a 4xx JSON error. Servers listen on 127.0.0.1, port 0, and are always closed.
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import WebSocket from 'ws';
import { expertPolicy, make, type StepResult } from '../../src/env';
import { makeCaches } from '../../src/env/cache';
import { createEnvServer } from '../../src/server/env_server';
import { expectThrows } from '../helpers/errors';
import { connect, expectError, playInProcess, request, useServers, type Res } from './harness';

const ENV = 'MedVista-Synth-Lesion-Visible-v0';
const MAX_STEPS = 8; // expert episodes take 2-4 turns; the bound keeps a broken env from looping

// ---- harness --------------------------------------------------------------------------------

const start = useServers();

// ---- the in-process twin --------------------------------------------------------------------

// The script writer and the twins draw the same items: generate each once (as makeVec's sub-envs do).
const caches = makeCaches(64, 1024);

/** Action texts for seed: one failing tool call, then the scripted expert's turns (zoom, answer). */
interface ResetArgs {
  seed: number;
  options?: { index: number };
}

async function scriptFor(reset: ResetArgs): Promise<string[]> {
  const env = make(ENV, { revealGroundTruth: true }, caches);
  const expert = expertPolicy();
  let { observation, info } = await env.reset(reset);
  const texts = ['<tool_call>{"name": "zoom_in", "arguments": {"cell": "Z9"}}</tool_call>'];
  for (let k = 0; k < MAX_STEPS; k++) {
    const t = expert.act(observation, info);
    texts.push(t);
    const r = await env.step(t);
    if (r.terminated || r.truncated) return texts;
    ({ observation, info } = r);
  }
  throw new Error(`expert episode of ${JSON.stringify(reset)} did not end in ${MAX_STEPS} steps`);
}

/** The same env, in-process, without the ground truth the server's env does not reveal either. */
const twin = (args: ResetArgs, texts: string[]) => playInProcess(make(ENV, {}, caches), args, texts);

const sha = (d: Uint8Array): string => createHash('sha256').update(d).digest('hex');
const plain = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

/** A wire observation equals the in-process one: text, tokens, and each view's pixels (PNG decoded). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function expectSameObservation(wire: any, o: StepResult['observation']): Promise<void> {
  expect(wire.text).toBe(o.text);
  expect(wire.tokens).toEqual(o.tokens);
  expect(wire.original_size).toEqual(o.originalSize);
  expect(wire.images).toHaveLength(o.images.length);
  for (const [i, v] of o.images.entries()) {
    const im = wire.images[i];
    expect({ type: im.type, mimeType: im.mimeType, w: im.w, h: im.h, channels: im.channels, sha256: im.sha256 }).toEqual({ type: 'image', mimeType: 'image/png', w: v.width, h: v.height, channels: v.channels, sha256: sha(v.data) });
    const png = Buffer.from(im.data, 'base64');
    expect((await sharp(png).metadata()).channels).toBe(v.channels); // grey views stay grey PNGs
    // sharp decodes to sRGB unless told otherwise; the pixels must be the env's, byte for byte.
    const data = await (v.channels === 1 ? sharp(png).toColourspace('b-w') : sharp(png)).raw().toBuffer();
    expect(sha(data)).toBe(sha(v.data));
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function expectSameStep(wire: any, r: StepResult): Promise<void> {
  await expectSameObservation(wire.observation, r.observation);
  expect({ reward: wire.reward, done: wire.done, truncated: wire.metadata.truncated, terminated: wire.metadata.terminated }).toEqual({ reward: r.reward, done: r.terminated || r.truncated, truncated: r.truncated, terminated: r.terminated });
  expect(wire.metadata.info).toEqual(plain(r.info));
}

/** One episode over HTTP; returns the step answers. */
async function httpEpisode(port: number, args: ResetArgs, texts: string[]) {
  const reset = await request(port, 'POST', '/reset', args);
  expect(reset.status).toBe(200);
  const id: string = reset.body.episode_id;
  const steps: Res[] = [];
  for (const text of texts) {
    const r = await request(port, 'POST', '/step', { episode_id: id, action: { text } });
    expect(r.status).toBe(200);
    steps.push(r);
    if (r.body.done) break;
  }
  return { id, reset, steps };
}

// ---- tests ----------------------------------------------------------------------------------

describe('env server: episodes equal the in-process env', () => {
  test('HTTP: reset, steps, state and close of one episode', async () => {
    const { port } = await start();
    const texts = await scriptFor({ seed: 7 });
    const want = await twin({ seed: 7 }, texts);
    const got = await httpEpisode(port, { seed: 7 }, texts);
    expect(got.reset.body).toMatchObject({ reward: null, done: false, episode_id: got.id });
    await expectSameObservation(got.reset.body.observation, want.reset.observation);
    expect(got.reset.body.metadata.info).toEqual(plain(want.reset.info));
    expect(got.steps).toHaveLength(want.steps.length);
    for (const [k, r] of want.steps.entries()) await expectSameStep(got.steps[k].body, r);
    expect(want.steps.at(-1)!.reward).toBeGreaterThan(0); // the expert's answer was graded correct

    const state = await request(port, 'GET', `/state?episode_id=${got.id}`);
    expect(state.body).toEqual({ episode_id: got.id, env: ENV, step_count: want.steps.length, done: true, episodes: 1 });
    expectError(await request(port, 'POST', '/step', { episode_id: got.id, action: { text: 'x' } }), 409, 'EPISODE_DONE');
    // X-Session-Id addresses the session as well as the body does.
    expect((await request(port, 'GET', '/state', undefined, { 'x-session-id': got.id })).body.step_count).toBe(want.steps.length);
    expect((await request(port, 'POST', '/close', { episode_id: got.id })).status).toBe(200);
    expectError(await request(port, 'GET', `/state?episode_id=${got.id}`), 404, 'NOT_FOUND');
  });

  test('WebSocket: the same episode, then state and a second reset on the same socket', async () => {
    const { server, port } = await start();
    const texts = await scriptFor({ seed: 7 });
    const want = await twin({ seed: 7 }, texts);
    const c = await connect(port);
    try {
      c.send({ type: 'reset', data: { seed: 7 } });
      const reset = await c.next();
      expect(reset.type).toBe('observation');
      await expectSameObservation(reset.data.observation, want.reset.observation);
      for (const [k, r] of want.steps.entries()) {
        // OpenEnv sends the action itself as data; {"action": ...} is accepted as well.
        c.send({ type: 'step', data: k % 2 ? { action: { text: texts[k] } } : { text: texts[k] } });
        const m = await c.next();
        expect(m.type).toBe('observation');
        await expectSameStep(m.data, r);
      }
      c.send({ type: 'state' });
      expect((await c.next()).data).toMatchObject({ step_count: want.steps.length, done: true, episodes: 1 });
      c.send({ type: 'step', data: { text: 'x' } });
      expect((await c.next()).data.code).toBe('EPISODE_DONE');
      c.send({ type: 'reset', data: { seed: 7 } });
      await expectSameObservation((await c.next()).data.observation, want.reset.observation);
      expect(server.sessions.size).toBe(1);
    } finally {
      await c.close();
    }
    // The socket's env is gone with the socket (bounded wait for the server's close handler).
    for (let k = 0; k < 50 && server.sessions.size > 0; k++) await new Promise((r) => setTimeout(r, 10));
    expect(server.sessions.size).toBe(0);
  });

  test('16 concurrent HTTP sessions each equal their in-process twin', async () => {
    const { server, port } = await start({ maxSessions: 16 });
    // 16 seeds over 4 items: generating an item takes ~0.1 s in jest's realm, and the sessions'
    // envs are independent all the same (their own episode streams, turns and tool state).
    const resets: ResetArgs[] = Array.from({ length: 16 }, (_, k) => ({ seed: 100 + k, options: { index: 1000 + (k % 4) } }));
    const scripts = await Promise.all(resets.map(scriptFor));
    const wants = await Promise.all(resets.map((r, k) => twin(r, scripts[k])));
    const gots = await Promise.all(resets.map((r, k) => httpEpisode(port, r, scripts[k])));
    expect(new Set(gots.map((g) => g.id)).size).toBe(16);
    expect(server.sessions.size).toBe(16);
    for (const [k, want] of wants.entries()) {
      await expectSameObservation(gots[k].reset.body.observation, want.reset.observation);
      expect(gots[k].steps).toHaveLength(want.steps.length);
      for (const [j, r] of want.steps.entries()) await expectSameStep(gots[k].steps[j].body, r);
    }
    // Full table: the 17th session is refused until one closes.
    expectError(await request(port, 'POST', '/reset', {}), 503, 'CAPACITY_REACHED');
    await request(port, 'POST', '/close', { episode_id: gots[0].id });
    expect((await request(port, 'POST', '/reset', {})).status).toBe(200);
  });
});

describe('env server: client mistakes are 4xx JSON errors', () => {
  test('HTTP bad requests', async () => {
    const { port } = await start({ bodyLimit: 4096 });
    const id = (await request(port, 'POST', '/reset', { seed: 1 })).body.episode_id as string;
    expectError(await request(port, 'POST', '/step', '{"action": {"text": "<answer>A'), 400, 'INVALID_JSON');
    expectError(await request(port, 'POST', '/step', { episode_id: id, action: { text: 'x'.repeat(8192) } }), 413, 'PAYLOAD_TOO_LARGE');
    expectError(await request(port, 'POST', '/step', { episode_id: 'no-such-episode', action: { text: 'x' } }), 404, 'NOT_FOUND', /no-such-episode/);
    expectError(await request(port, 'POST', '/step', { episode_id: id, action: { text: 5 } }), 400, 'VALIDATION_ERROR', /action\.text/);
    expectError(await request(port, 'POST', '/step', { episode_id: id, action: '<answer>A</answer>' }), 400, 'VALIDATION_ERROR', /action/);
    expectError(await request(port, 'POST', '/step', { episode_id: id }), 400, 'VALIDATION_ERROR', /action/);
    expectError(await request(port, 'POST', '/step', { action: { text: 'x' } }), 400, 'VALIDATION_ERROR', /episode_id/);
    expectError(await request(port, 'POST', '/step', { episode_id: '../../etc', action: { text: 'x' } }), 400, 'VALIDATION_ERROR', /episode_id/);
    expectError(await request(port, 'POST', '/reset', { seed: 1.5 }), 400, 'VALIDATION_ERROR', /seed/);
    expectError(await request(port, 'POST', '/reset', { env: 'MedVista-Synth-v9' }), 400, 'VALIDATION_ERROR', /MedVista-Synth-v0/);
    expectError(await request(port, 'POST', '/reset', { sede: 1 }), 400, 'VALIDATION_ERROR', /sede/);
    expectError(await request(port, 'POST', '/reset', '{"__proto__": {"x": 1}}'), 400, 'INVALID_JSON');
    expectError(await request(port, 'POST', '/step', '<step/>', { 'content-type': 'application/xml' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    expectError(await request(port, 'GET', '/../etc/passwd'), 404, 'NOT_FOUND');
    expectError(await request(port, 'GET', '/%2e%2e/%2e%2e/etc/passwd'), 404, 'NOT_FOUND');
    expectError(await request(port, 'POST', '/tools/call', { name: 'zoom_in', arguments: { cell: 'B2' } }), 400, 'VALIDATION_ERROR', /episode_id/);
    // After all that the session is intact.
    expect((await request(port, 'GET', `/state?episode_id=${id}`)).body).toMatchObject({ step_count: 0, done: false });
  });

  test('bearer token on every route but /health, HTTP and WebSocket', async () => {
    const { port } = await start({ token: 's3cret' });
    expect((await request(port, 'GET', '/health')).body).toEqual({ status: 'healthy' });
    expectError(await request(port, 'POST', '/reset', {}), 401, 'UNAUTHORIZED', /missing/);
    expectError(await request(port, 'POST', '/reset', {}, { authorization: 'Bearer wrong' }), 401, 'UNAUTHORIZED', /wrong/);
    expectError(await request(port, 'GET', '/metadata', undefined, { authorization: 's3cret' }), 401, 'UNAUTHORIZED');
    expectError(await request(port, 'GET', '/no-such-route'), 404, 'NOT_FOUND'); // unknown routes: 404 with or without a token
    expect((await request(port, 'GET', '/metadata', undefined, { authorization: 'Bearer s3cret' })).status).toBe(200);
    const refused = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
      ws.on('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        ws.terminate();
      });
      ws.on('open', () => {
        resolve(101);
        ws.close();
      });
      ws.on('error', () => undefined);
    });
    expect(refused).toBe(401);
    const c = await connect(port, { authorization: 'Bearer s3cret' });
    c.send({ type: 'state' });
    expect((await c.next()).type).toBe('state');
    await c.close();
  });

  test('WebSocket: malformed messages get error frames and the socket stays usable', async () => {
    const { port } = await start();
    const c = await connect(port);
    try {
      c.send('{not json');
      expect((await c.next()).data.code).toBe('INVALID_JSON');
      c.send({ type: 'dance' });
      expect((await c.next()).data.code).toBe('UNKNOWN_TYPE');
      c.send([1, 2]);
      expect((await c.next()).data.code).toBe('VALIDATION_ERROR');
      c.send({ type: 'step', data: { text: 'x' } });
      expect((await c.next()).data.code).toBe('NO_EPISODE');
      c.send({ type: 'reset', data: { seed: 'one' } });
      expect((await c.next()).data).toMatchObject({ code: 'VALIDATION_ERROR', message: expect.stringMatching(/data\.seed/) });
      c.send({ type: 'reset', data: { seed: 2 } });
      const r = await c.next();
      expect(r.type).toBe('observation');
      c.send({ type: 'step', data: { text: 42 } });
      expect((await c.next()).data.message).toMatch(/data\.text/);
      c.send({ type: 'state' });
      expect((await c.next()).data).toMatchObject({ step_count: 0, done: false });
    } finally {
      await c.close();
    }
  });

  test('idle sessions are evicted', async () => {
    const { server, port } = await start({ idleTimeoutMs: 50 });
    const id = (await request(port, 'POST', '/reset', { seed: 1 })).body.episode_id as string;
    for (let k = 0; k < 100 && server.sessions.size > 0; k++) await new Promise((r) => setTimeout(r, 10));
    expectError(await request(port, 'GET', `/state?episode_id=${id}`), 404, 'NOT_FOUND', /evicted/);
  });

  test('metadata, schema and tools/list describe the env', async () => {
    const { port } = await start();
    const meta = (await request(port, 'GET', '/metadata')).body;
    expect(meta).toMatchObject({ name: 'medgym', env: ENV });
    expect(meta.envs.map((e: { id: string }) => e.id)).toContain('MedVista-Synth-v0');
    const schema = (await request(port, 'GET', '/schema')).body;
    expect(schema.action).toMatchObject({ type: 'object', oneOf: [{ required: ['text'] }, { required: ['token_ids'] }] });
    expect(Object.keys(schema.action.properties)).toEqual(expect.arrayContaining(['text', 'token_ids']));
    expect(Object.keys(schema)).toEqual(['action', 'observation', 'state']);
    const tools = (await request(port, 'GET', '/tools/list')).body.tools;
    expect(tools.map((t: { name: string }) => t.name)).toContain('zoom_in');
    expect(tools[0].inputSchema.type).toBe('object');
  });
});

describe('env server: exposure', () => {
  test('a non-loopback host without a token is refused before listening', async () => {
    expectThrows(() => createEnvServer({ host: '0.0.0.0' }), 'RangeError', /without a token/);
    expectThrows(() => createEnvServer({ host: '192.168.1.5' }), 'RangeError', /without a token/);
    expectThrows(() => createEnvServer({ host: '0.0.0.0', token: '' }), 'RangeError', /non-empty/);
    expectThrows(() => createEnvServer({ maxSessions: 0 }), 'RangeError', /maxSessions/);
    const made = [createEnvServer({ host: '0.0.0.0', token: 't' }), ...['localhost', '::1', '127.0.0.2'].map((host) => createEnvServer({ host }))];
    await Promise.all(made.map((s) => s.close()));
  });
});
