// HttpPolicy, 'medgym-vlm' protocol, against a fake `medgym serve` that renders what it receives with
// renderMedgymChat: the context it renders is exactly the trajectory's ids; requests carry the sampled
// ids of earlier turns, the stream key (prompt, sample) and the counter of draws across turns and forks;
// stop ids and bans as the rollout asks; the exactness guard refuses a context other than the env's.
import { makeVec } from '../../../src/env';
import { HttpPolicy, MedgymChatError, renderMedgymChat, type ChatCompletionRequest, type MedgymModelInfo } from '../../../src/policy/openai';
import { rollout } from '../../../src/rollout';
import { GENERATOR_ITEMS } from '../../../src/rollout/items';
import { ANSWER_END_ID, encode, EOS_ID, TOOL_CALL_END_ID, TOOL_CALL_ID } from '../../../src/tokenizer';
import { DEFAULT_ENV_ID } from '../../../src/train/config';
import { chats, completion, model, useFake, type Recorded } from './fake_server';

const start = useFake();
const INFO: MedgymModelInfo = { protocol: 'medgym-vlm', image_size: 64, channels: 3, image_tokens: 64, max_seq: 1024, vocab_size: 268 };
const ZOOM = '<tool_call>{"name":"zoom_in","arguments":{"cell":"B3"}}</tool_call>';

/** A fake medgym serve: renders each request (recorded beside it) and samples from `script(sample, counter)`. */
async function serve(script: (sample: number, counter: number) => string) {
  const rendered: number[][] = [];
  const fake = await start({
    models: [model('ckpt', INFO)],
    chat: (r: Recorded) => {
      rendered.push(renderMedgymChat(r.body.messages).tokens);
      const k = r.body.medgym_sample_key!;
      const ids = encode(script(k.sample_index, k.counter));
      const why = ids.at(-1) === TOOL_CALL_END_ID || ids.at(-1) === EOS_ID ? 'stop_token' : 'max_new_tokens';
      // Log-probs the client must pass through: -(k + 1) / 8 for the k-th id (distinct, exact in float32).
      const logprobs = { content: ids.map((id, k) => ({ token: '', logprob: -(k + 1) / 8, bytes: null, top_logprobs: [] })) };
      return { body: completion('ckpt', { content: 'ignored by the client' }, { token_ids: ids, logprobs, medgym_finish_reason: why }) };
    },
  });
  return { fake, rendered };
}

test('a group through rollout(): the server renders exactly the trajectory; keys, counters, token_ids, stops and bans', async () => {
  const { fake, rendered } = await serve((sample, counter) => (sample === 0 && counter === 0 ? ZOOM : '<answer>A</answer><|eos|>'));
  const policy = await HttpPolicy.connect(fake.url, 'ckpt');
  expect([policy.protocol, policy.imageTokens, policy.maxSeq]).toEqual(['medgym-vlm', 64, 1024]);
  const vec = makeVec(DEFAULT_ENV_ID, 2, { viewChannels: 3, imageTokens: 64, maxTotalTokens: 1024 });
  try {
    const ts = await rollout(policy, vec, { seed: 5, step: 2, items: GENERATOR_ITEMS.evalItems(1), groupSize: 2, temperature: 0.8, topP: 0.9, maxNewTokensPerTurn: 48 });
    expect(ts.map((t) => [t.turns, t.toolCalls, t.answerStatus])).toEqual([
      [2, 1, 'ok'],
      [1, 0, 'ok'],
    ]);
    const reqs = chats(fake);
    expect(reqs).toHaveLength(3);
    for (const r of reqs) {
      expect(r).toMatchObject({ model: 'ckpt', return_token_ids: true, logprobs: true, max_tokens: 48, temperature: 0.8, top_p: 0.9, stop_token_ids: [EOS_ID, TOOL_CALL_END_ID, ANSWER_END_ID] });
      expect(r.logit_bias).toEqual({ 256: -100, 258: -100, 259: -100, 262: -100 });
    }
    const key = (r: ChatCompletionRequest) => r.medgym_sample_key!;
    expect(reqs.slice(0, 2).map(key).sort((a, b) => a.sample_index - b.sample_index)).toEqual([
      { seed: 5, step: 2, prompt_index: 0, sample_index: 0, counter: 0 },
      { seed: 5, step: 2, prompt_index: 0, sample_index: 1, counter: 0 },
    ]);
    // Sample 0's second turn: the counter has moved by the tokens it sampled; its turn goes back as ids.
    expect(key(reqs[2])).toEqual({ seed: 5, step: 2, prompt_index: 0, sample_index: 0, counter: encode(ZOOM).length });
    expect(reqs[2].messages.find((m) => m.role === 'assistant')).toEqual({ role: 'assistant', content: ZOOM, token_ids: encode(ZOOM) });
    // What the server rendered is the trajectory up to the turn it sampled: token-exact.
    const t0 = ts[0];
    const last = encode('<answer>A</answer><|eos|>').length;
    expect(rendered[2]).toEqual(t0.tokens.slice(0, t0.tokens.length - last));
    expect(renderMedgymChat(reqs[2].messages).imageUrls).toHaveLength(t0.images.length);
    // The server's log-probs are the trajectory's sampled logp (GRPO's old_logp), token for token.
    const first = t0.mask.indexOf(1);
    expect(Array.from(t0.oldLogp.subarray(first, first + encode(ZOOM).length))).toEqual(encode(ZOOM).map((_, k) => -(k + 1) / 8));
  } finally {
    vec.close();
    policy.dispose();
  }
});

test('forks inherit the conversation and the counter; explicit keys; no tools bans <tool_call>; the exactness guard', async () => {
  const { fake } = await serve(() => ZOOM);
  const policy = await HttpPolicy.connect(fake.url, 'ckpt');
  const vec = makeVec(DEFAULT_ENV_ID, 1, { viewChannels: 3, imageTokens: 64, maxTotalTokens: 1024 });
  try {
    const env = vec.envs[0];
    const { observation } = await env.reset({ options: { index: GENERATOR_ITEMS.evalItems(1)[0] } });
    const s = policy.createSession({ seed: 9 });
    const [a, b] = await s.add([{ tokens: observation.tokens, images: observation.images }, { tokens: observation.tokens, images: observation.images, key: { step: 4, counter: 7 } }]);
    const [g] = await s.generate([a], { maxNewTokens: 64, bannedTokens: [TOOL_CALL_ID] });
    expect(g.finishReason).toBe('stop_token');
    expect(Array.from(g.logp)).toEqual(Array.from(g.tokens, (_, k) => -(k + 1) / 8)); // the server's, passed through
    const r = await env.step(g.tokens);
    await s.append([{ id: a, input: { tokens: r.observation.tokens, images: r.observation.images } }]);
    const kids = await s.fork(a, 2, [{}, { seed: 3, sampleIndex: 7, counter: 99 }]);
    expect(Array.from(s.tokens(kids[1]))).toEqual(Array.from(s.tokens(a)));
    await s.generate([...kids, b], { maxNewTokens: 64 });
    const reqs = chats(fake);
    expect(reqs[0].logit_bias).toEqual({ 260: -100 });
    expect(reqs[0].medgym_sample_key).toEqual({ seed: 9, step: 0, prompt_index: 0, sample_index: 0, counter: 0 });
    const n = g.tokens.length;
    expect(reqs.slice(1).map((q) => q.medgym_sample_key)).toEqual([
      { seed: 9, step: 0, prompt_index: 0, sample_index: 0, counter: n },
      { seed: 3, step: 0, prompt_index: 0, sample_index: 7, counter: n },
      { seed: 9, step: 4, prompt_index: 1, sample_index: 0, counter: 7 },
    ]);
    expect(reqs[1].messages).toEqual(reqs[2].messages);
    expect(reqs[1].messages.filter((m) => m.role === 'tool')).toHaveLength(1);

    // A response the env never sends (it does not end with "\nassistant: "): refused, the session unchanged.
    const before = Array.from(s.tokens(kids[0]));
    await expect(s.append([{ id: kids[0], input: { tokens: encode('\n<tool_response>x</tool_response>'), images: [] } }])).rejects.toThrow(MedgymChatError);
    await expect(s.append([{ id: kids[0], input: { tokens: encode('\n<tool_response>x</tool_response>'), images: [] } }])).rejects.toThrow(/first difference at id \d+.*refusing to send a context other than the env's/);
    expect(Array.from(s.tokens(kids[0]))).toEqual(before);
    await expect(s.generate([kids[0]])).rejects.toThrow(/already generated a turn; append\(\) the env's response/);
    await expect(s.append([{ id: b, input: { tokens: r.observation.tokens, images: [] } }])).rejects.toThrow(/0 image\(s\) came with it/);
  } finally {
    vec.close();
    policy.dispose();
  }
});

test('an answer without token_ids or log-probs, or with ids outside the vocabulary, is a typed error', async () => {
  const lp = (n: number) => ({ content: Array.from({ length: n }, () => ({ token: '', logprob: -1, bytes: null, top_logprobs: [] })) });
  for (const [extra, message] of [
    [{}, /choices\[0\]\.token_ids/],
    [{ token_ids: [65, 300], logprobs: lp(2) }, /choices\[0\]\.token_ids/],
    [{ token_ids: [65, 66] }, /choices\[0\]\.logprobs/],
    [{ token_ids: [65, 66], logprobs: lp(1) }, /choices\[0\]\.logprobs/],
  ] as const) {
    const fake = await start({ models: [model('ckpt', INFO)], chat: () => ({ body: completion('ckpt', { content: 'A' }, extra) }) });
    const policy = await HttpPolicy.connect(fake.url, 'ckpt');
    const s = policy.createSession();
    const [id] = await s.add([{ tokens: encode('<|bos|>sys\nuser: \nq\nassistant: ') }]);
    await expect(s.generate([id])).rejects.toThrow(message);
    policy.dispose();
  }
});
