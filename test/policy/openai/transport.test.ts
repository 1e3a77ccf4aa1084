// HttpPolicy's transport against a fake server: retries on 500 and 429 (Retry-After honoured), a timeout,
// the concurrency limit, malformed answers, a model the server does not have, an HTTP error carrying the
// server's message (never the API key), and dispose() aborting what is in flight.
import { makeVec } from '../../../src/env';
import { HttpPolicy, HttpPolicyError, retryAfterMs } from '../../../src/policy/openai';
import { GENERATOR_ITEMS } from '../../../src/rollout/items';
import { DEFAULT_ENV_ID } from '../../../src/train/config';
import { expectRejects } from '../../helpers/errors';
import { chats, completion, model, useFake } from './fake_server';

const start = useFake();
const answer = { body: completion('m', { content: '<answer>A</answer>' }) };

/** A session holding `n` copies of a real env prompt. */
async function prompts(policy: HttpPolicy, n: number) {
  const vec = makeVec(DEFAULT_ENV_ID, 1, {});
  try {
    const { observation } = await vec.envs[0].reset({ options: { index: GENERATOR_ITEMS.evalItems(1)[0] } });
    const s = policy.createSession({ seed: 1 });
    const ids = await s.add(Array.from({ length: n }, () => ({ tokens: observation.tokens, images: observation.images })));
    return { s, ids };
  } finally {
    vec.close();
  }
}

/** The error a promise rejects with, checked to be an HttpPolicyError. */
async function failure(p: Promise<unknown>): Promise<HttpPolicyError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HttpPolicyError);
  return err as HttpPolicyError;
}

test('retries on 500 and on 429 after its Retry-After, then succeeds', async () => {
  const fake = await start({
    modelsAnswer: (n) => (n === 0 ? { status: 500, body: { error: { message: 'boom' } } } : n === 1 ? { status: 429, headers: { 'retry-after': '0.4' }, body: 'slow down' } : { body: { data: [model('m')] } }),
  });
  const t0 = Date.now();
  const policy = await HttpPolicy.connect(fake.url, 'm', { backoffMs: 1 });
  expect(Date.now() - t0).toBeGreaterThanOrEqual(380); // the Retry-After, not the 1 ms backoff
  expect(fake.requests).toHaveLength(3);
  policy.dispose();
  expect(retryAfterMs('2')).toBe(2000);
  expect(retryAfterMs(new Date(Date.now() + 5000).toUTCString())).toBeGreaterThan(3000);
  expect(retryAfterMs(null)).toBeUndefined();
});

test('retries give up after `retries` and report the last status; a 400 is not retried and carries the server message, never the key', async () => {
  const fake = await start({ modelsAnswer: () => ({ status: 503, body: { error: { message: 'overloaded' } } }) });
  const e = await failure(HttpPolicy.connect(fake.url, 'm', { retries: 2, backoffMs: 1 }));
  expect(fake.requests).toHaveLength(3);
  expect(e.status).toBe(503);
  expect(e.message).toBe(`GET ${fake.url}/models: HTTP 503: overloaded`);

  const bad = await start({ chat: (r) => ({ status: 400, body: { error: { message: `bad request from ${String(r.headers.authorization)}` } } }) });
  const policy = await HttpPolicy.connect(bad.url, 'm', { apiKey: 'sk-secret-123' });
  const { s, ids } = await prompts(policy, 1);
  const e2 = await failure(s.generate(ids, { maxNewTokens: 8 }));
  expect(chats(bad)).toHaveLength(1);
  expect(e2.status).toBe(400);
  expect(e2.url).toBe(`${bad.url}/chat/completions`);
  expect(e2.message).toContain('bad request from Bearer ***');
  expect(e2.message).not.toContain('sk-secret-123');
  policy.dispose();
});

test('a request that outlives the timeout is a typed timeout error naming the URL', async () => {
  const fake = await start({ chat: () => ({ ...answer, delayMs: 400 }) });
  const policy = await HttpPolicy.connect(fake.url, 'm', { timeoutSeconds: 0.1 });
  const { s, ids } = await prompts(policy, 1);
  const e = await failure(s.generate(ids, { maxNewTokens: 8 }));
  expect(e.kind).toBe('timeout');
  expect(e.message).toMatch(new RegExp(`POST ${fake.url}/chat/completions: no answer within 0.1 s \\(timeout\\)`));
  expect(chats(fake)).toHaveLength(1); // timeouts are not retried
  policy.dispose();
});

test('the concurrency limit holds across the sequences of a generate()', async () => {
  const fake = await start({ chat: () => ({ ...answer, delayMs: 40 }) });
  const policy = await HttpPolicy.connect(fake.url, 'm', { concurrency: 2 });
  const { s, ids } = await prompts(policy, 6);
  const out = await s.generate(ids, { maxNewTokens: 8 });
  expect(out.map((o) => o.text)).toEqual(new Array(6).fill('<answer>A</answer>'));
  expect(chats(fake)).toHaveLength(6);
  expect(fake.maxInFlight).toBe(2);
  policy.dispose();
});

test('malformed answers are typed errors naming the URL', async () => {
  const cases: [unknown, RegExp][] = [
    ['<html>oops</html>', /chat\/completions: the answer is not JSON: "<html>oops<\/html>"/],
    [{ object: 'chat.completion', model: 'm', choices: [] }, /chat\/completions: the answer has no choices/],
    [completion('other', { content: 'x' }), /chat\/completions: the answer is for model "other" but "m" was asked for/],
    [{ model: 'm', choices: [{ index: 0 }] }, /choices\[0\] has no message/],
    [completion('m', { content: 'x', tool_calls: [{ id: 'a' }] }), /tool_calls\[0\] has no function name/],
  ];
  for (const [body, re] of cases) {
    const fake = await start({ chat: () => ({ body }) });
    const policy = await HttpPolicy.connect(fake.url, 'm');
    const { s, ids } = await prompts(policy, 1);
    const e = await failure(s.generate(ids));
    expect(e.kind).toBe('malformed');
    expect(e.message).toContain(fake.url);
    expect(e.message).toMatch(re);
    policy.dispose();
  }
  const listing = await start({ modelsAnswer: () => ({ body: { models: [] } }) });
  expect((await failure(HttpPolicy.connect(listing.url, 'm'))).message).toMatch(/\/models: expected \{"data": \[models…\]\}/);
});

test('connect: a model the server lacks lists the ones it has; bad options name the option', async () => {
  const fake = await start({ models: [model('qwen2-vl-7b'), model('llava')] });
  const e = await failure(HttpPolicy.connect(fake.url, 'gpt-4o'));
  expect(e.message).toBe(`${fake.url}/models: no model "gpt-4o"; the server has "qwen2-vl-7b", "llava"`);
  await expectRejects(HttpPolicy.connect('ftp://x', 'm'), 'RangeError', /http\(s\) URL for baseURL/);
  await expectRejects(HttpPolicy.connect(fake.url, ''), 'TypeError', /non-empty string for model/);
  await expectRejects(HttpPolicy.connect(fake.url, 'llava', { protocol: 'grpc' as 'chat' }), 'RangeError', /auto, medgym-vlm, chat for protocol/);
  await expectRejects(HttpPolicy.connect(fake.url, 'llava', { toolFormat: 'xml' as 'text' }), 'RangeError', /openai, text for toolFormat/);
  await expectRejects(HttpPolicy.connect(fake.url, 'llava', { concurrency: 0 }), 'RangeError', /integer >= 1 for concurrency/);
  await expectRejects(HttpPolicy.connect(fake.url, 'llava', { timeoutSeconds: -1 }), 'RangeError', /timeoutSeconds/);
  await expectRejects(HttpPolicy.connect(fake.url, 'llava', { protocol: 'medgym-vlm' }), 'RangeError', /needs a medgym-vlm model/);
  const p = await HttpPolicy.connect(fake.url, 'llava', { imageTokens: 100, maxSeq: 4096 });
  expect([p.protocol, p.imageTokens, p.maxSeq]).toEqual(['chat', 100, 4096]);
  const { s, ids } = await prompts(p, 1);
  await expectRejects(s.generate(ids, { stopStrings: ['x'] }), 'RangeError', /stopStrings/);
  await expectRejects(s.generate(ids, { temperature: -1 }), 'RangeError', /options\.temperature/);
  await expectRejects(s.generate([42]), 'RangeError', /unknown or released sequence id 42 \(`ids\[0\]`\)/);
  await expectRejects(s.add([{ tokens: [1, 999] }]), 'RangeError', /seqs\[0\]\.tokens/);
  p.dispose();
});

test('dispose() aborts the requests in flight; the policy refuses further calls', async () => {
  const fake = await start({ chat: () => ({ ...answer, delayMs: 300 }) });
  const policy = await HttpPolicy.connect(fake.url, 'm');
  const { s, ids } = await prompts(policy, 2);
  const pending = s.generate(ids);
  await new Promise((r) => setTimeout(r, 50));
  policy.dispose();
  const e = await failure(pending);
  expect(e.kind).toBe('aborted');
  expect(() => policy.createSession()).toThrow(/disposed/);
  await expect(s.generate(ids)).rejects.toThrow(/policy was disposed/);
});
