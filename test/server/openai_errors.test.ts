// Every client mistake `medgym serve` can see is a 4xx in OpenAI's error shape
// {error: {message, type, param, code}} — checked raw and through the openai client's typed errors.
import OpenAI from 'openai';
import type { AddressInfo } from 'node:net';
import { NativePolicy } from '../../src/policy';
import { createOpenAIServer } from '../../src/server/openai/server';
import { expectThrows } from '../helpers/errors';
import { Rng } from '../helpers/random';
import { request, type Res } from './harness';
import { pngDataUri, randomViewOf, useOpenAIServers, writeCheckpoint, type Served } from './openai_harness';

function expectOpenAIError(r: Res, status: number, type: string, param: string | null, message?: RegExp): void {
  expect(r.status).toBe(status);
  expect(Object.keys(r.body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect({ type: r.body.error.type, param: r.body.error.param }).toEqual({ type, param });
  if (message) expect(r.body.error.message).toMatch(message);
}

describe('medgym serve: errors', () => {
  const start = useOpenAIServers();
  let file: string;
  let s: Served;
  let uri: string;
  beforeAll(async () => {
    file = await writeCheckpoint(4);
    s = await start(file, { bodyLimit: 64 * 1024, maxImages: 2, maxMessages: 8 });
    uri = await pngDataUri(randomViewOf(new Rng(1)));
  });
  const chat = (body: Record<string, unknown>): Promise<Res> =>
    request(s.port, 'POST', '/v1/chat/completions', { model: 'tiny-vlm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, ...body });
  const withImage = (url: string): Record<string, unknown> => ({ messages: [{ role: 'user', content: [{ type: 'text', text: 'x' }, { type: 'image_url', image_url: { url } }] }] });

  test('a token on a server configured for a non-loopback host: 401 when missing or wrong, 200 with it; /health open', async () => {
    expectThrows(() => createOpenAIServer({ policy: undefined as never, name: 'x', host: '0.0.0.0' }), 'RangeError', /without a token/);
    const policy = await NativePolicy.load(file);
    const server = createOpenAIServer({ policy, name: 'tiny-vlm', host: '0.0.0.0', token: 's3cret' });
    try {
      await server.app.listen({ host: '127.0.0.1', port: 0 }); // the test binds loopback; the server was configured for 0.0.0.0
      const port = (server.app.server.address() as AddressInfo).port;
      expectOpenAIError(await request(port, 'GET', '/v1/models'), 401, 'authentication_error', null, /missing Authorization/);
      expectOpenAIError(await request(port, 'GET', '/v1/models', undefined, { authorization: 'Bearer nope' }), 401, 'authentication_error', null, /wrong bearer token/);
      expect((await request(port, 'GET', '/health')).status).toBe(200);
      const bad = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'nope', maxRetries: 0 });
      await expect(bad.models.list()).rejects.toMatchObject({ status: 401, type: 'authentication_error' });
      const good = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 's3cret', maxRetries: 0 });
      expect((await good.models.list()).data[0].id).toBe('tiny-vlm');
    } finally {
      await server.close();
    }
  });

  test('malformed JSON, a non-object body, and shape errors: 400 naming the field', async () => {
    expectOpenAIError(await request(s.port, 'POST', '/v1/chat/completions', '{"model": "tiny-vlm", '), 400, 'invalid_request_error', null, /malformed request body/);
    expectOpenAIError(await request(s.port, 'POST', '/v1/chat/completions', '[1, 2]'), 400, 'invalid_request_error', 'body');
    expectOpenAIError(await chat({ messages: [] }), 400, 'invalid_request_error', 'messages');
    expectOpenAIError(await chat({ temperature: 3 }), 400, 'invalid_request_error', 'temperature');
    expectOpenAIError(await chat({ messages: [{ role: 'robot', content: 'x' }] }), 400, 'invalid_request_error', 'messages[0].role');
    expectOpenAIError(await chat({ n: 99 }), 400, 'invalid_request_error', 'n');
    expectOpenAIError(await chat({ medgym_sample_key: { seed: -1 } }), 400, 'invalid_request_error', 'medgym_sample_key.seed');
    expectOpenAIError(await chat({ stop_token_ids: [300] }), 400, 'invalid_request_error', 'stop_token_ids[0]');
    expectOpenAIError(await chat({ messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: 'y', token_ids: [259] }, { role: 'user', content: 'z' }] }), 400, 'invalid_request_error', 'messages[1].token_ids[0]');
  });

  test('unknown model and unknown route: 404', async () => {
    expectOpenAIError(await chat({ model: 'gpt-4o' }), 404, 'not_found_error', 'model', /does not exist/);
    expectOpenAIError(await request(s.port, 'GET', '/v1/models/gpt-4o'), 404, 'not_found_error', 'model');
    expectOpenAIError(await request(s.port, 'GET', '/v1/embeddings'), 404, 'not_found_error', null, /no route/);
    await expect(s.client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  test('an oversized body: 413', async () => {
    const r = await chat({ messages: [{ role: 'user', content: 'x'.repeat(80 * 1024) }] });
    expectOpenAIError(r, 413, 'invalid_request_error', null, /too large/);
    expect(r.body.error.code).toBe('request_too_large');
  });

  test('images: wrong size, not an image, remote URL, too many: 400 naming messages[i].content[j]', async () => {
    const big = await pngDataUri(randomViewOf(new Rng(2), 32));
    expectOpenAIError(await chat(withImage(big)), 400, 'invalid_request_error', 'messages[0].content[1]', /expected a 16×16 view but received 32×32/);
    expectOpenAIError(await chat(withImage('data:image/png;base64,aGVsbG8=')), 400, 'invalid_request_error', 'messages[0].content[1]', /unreadable image/);
    expectOpenAIError(await chat(withImage('data:text/plain;base64,aGVsbG8=')), 400, 'invalid_request_error', 'messages[0].content[1]');
    const remote = await chat(withImage('https://example.com/x.png'));
    expectOpenAIError(remote, 400, 'invalid_request_error', 'messages[0].content[1]', /remote image URLs are not supported/);
    expect(remote.body.error.code).toBe('remote_image_url');
    const three = { messages: [{ role: 'user', content: [1, 2, 3].map(() => ({ type: 'image_url', image_url: { url: uri } })) }] };
    expectOpenAIError(await chat(three), 400, 'invalid_request_error', 'messages', /at most 2 images/);
    await expect(s.client.chat.completions.create({ model: 'tiny-vlm', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: big } }] }] })).rejects.toBeInstanceOf(OpenAI.BadRequestError);
  });

  test('logit_bias other than -100, or a key that is no token id: 400', async () => {
    expectOpenAIError(await chat({ logit_bias: { 65: 5 } }), 400, 'invalid_request_error', 'logit_bias.65', /only -100/);
    expectOpenAIError(await chat({ logit_bias: { 9999: -100 } }), 400, 'invalid_request_error', 'logit_bias.9999');
    expectOpenAIError(await chat({ logit_bias: { abc: -100 } }), 400, 'invalid_request_error', 'logit_bias.abc');
  });

  test('a prompt longer than the context, or too many messages: 400', async () => {
    const r = await chat({ messages: [{ role: 'user', content: 'y'.repeat(300) }] });
    expectOpenAIError(r, 400, 'invalid_request_error', 'messages', /context is 256/);
    expect(r.body.error.code).toBe('context_length_exceeded');
    expectOpenAIError(await chat({ messages: Array.from({ length: 9 }, () => ({ role: 'user', content: 'm' })) }), 400, 'invalid_request_error', 'messages', /at most 8 messages/);
  });

  test('a full queue: 429', async () => {
    const q = await start(file, { maxBatch: 1, maxQueue: 1, maxChoices: 1 });
    const body = { model: 'tiny-vlm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 100, stop_token_ids: [], logit_bias: { 257: -100 } };
    const all = await Promise.all(Array.from({ length: 6 }, () => request(q.port, 'POST', '/v1/chat/completions', body)));
    const refused = all.filter((r) => r.status === 429);
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) expectOpenAIError(r, 429, 'rate_limit_error', null, /too many requests waiting/);
    expect(all.filter((r) => r.status === 200).length).toBeGreaterThanOrEqual(2);
  });
});
