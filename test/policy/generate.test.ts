// Generation: KV cache vs recomputation, sampled logp vs a forward, reproducible per-sequence streams,
// continuous batching (append after a stop), stops and bans.
import { NativePolicy, DEFAULT_BANNED_TOKENS } from '../../src/policy';
import { setSimdLevel } from '../../src/native';
import { decode, encode, EOS_ID, IMAGE_ID, TOOL_CALL_END_ID } from '../../src/tokenizer';
import { expectClose } from '../helpers/compare';
import { Rng } from '../helpers/random';
import { TEST_CONFIG, randomView, randomizeWeights } from './common';

describe('GenerationSession', () => {
  const policy = NativePolicy.create({ ...TEST_CONFIG, maxSeq: 200 }, { seed: 2 });
  randomizeWeights(policy, 31);
  const size = policy.config.imageSize;
  const rng = new Rng(12);
  const prompts = [
    { tokens: [...encode('<|bos|>see '), IMAGE_ID, ...encode(' ok?')], images: [randomView(rng, size)] },
    { tokens: encode('<|bos|>plain prompt') },
    { tokens: [...encode('<|bos|>'), IMAGE_ID, IMAGE_ID], images: [randomView(rng, size), randomView(rng, size)] },
  ];
  afterAll(() => policy.dispose());

  test.each(['portable', 'avx2', 'avx512'] as const)('greedy: KV-cache generation equals no-cache generation token for token (%s kernels)', async (level) => {
    setSimdLevel(level);
    const opts = { maxNewTokens: 40, temperature: 0, stopTokens: [] as number[] };
    const a = policy.createSession();
    const b = policy.createSession({ kvCache: false });
    const ra = await a.generate(await a.add(prompts), opts);
    const rb = await b.generate(await b.add(prompts), opts);
    ra.forEach((r, i) => {
      expect(r.tokens.length).toBe(40);
      expect(Array.from(r.tokens)).toEqual(Array.from(rb[i].tokens));
      expectClose(r.logp, rb[i].logp, 1e-4, 1e-2);
    });
    a.dispose();
    b.dispose();
    setSimdLevel('avx512');
  });

  test('sampled log-probs equal the log-probs a forward recomputes on the same sequence (τ, top-p)', async () => {
    for (const [temperature, topP] of [[1, 1], [0.7, 0.9]]) {
      const s = policy.createSession({ seed: 5 });
      const ids = await s.add(prompts);
      const out = await s.generate(ids, { maxNewTokens: 30, temperature, topP });
      const full = ids.map((id) => ({ tokens: Array.from(s.tokens(id)), images: prompts[id].images }));
      const r = await policy.forward(full, { temperature });
      out.forEach((o, i) => {
        const n = prompts[i].tokens.length;
        expect(Array.from(full[i].tokens.slice(n))).toEqual(Array.from(o.tokens));
        expectClose(o.logp, r.logp[i].slice(n), 1e-4, 1e-2);
      });
      s.dispose();
    }
  });

  test('reproducible: a sequence samples the same whatever else is in the batch and whenever others finish', async () => {
    const key = { seed: 9, step: 3, promptIndex: 1, sampleIndex: 2 };
    const s1 = policy.createSession();
    const [alone] = await s1.add([{ ...prompts[1], key }]);
    const r1 = await s1.generate([alone], { maxNewTokens: 25, stopTokens: [] });
    const s2 = policy.createSession();
    const ids = await s2.add([
      { ...prompts[0], key: { ...key, sampleIndex: 0 } },
      { ...prompts[1], key },
      { ...prompts[2], key: { ...key, sampleIndex: 7 } },
    ]);
    // the others stop early (a stop token they are likely to hit: any byte < 128 is fine too)
    const r2 = await s2.generate(ids, { maxNewTokens: 25, stopTokens: [] });
    expect(Array.from(r2[1].tokens)).toEqual(Array.from(r1[0].tokens));
    expect(Array.from(r2[0].tokens)).not.toEqual(Array.from(r2[1].tokens));
    // two sessions with the same keys sample identically; another sample index differs
    const s3 = policy.createSession();
    const [x, y] = await s3.add([{ ...prompts[1], key }, { ...prompts[1], key: { ...key, sampleIndex: 3 } }]);
    const r3 = await s3.generate([x, y], { maxNewTokens: 25, stopTokens: [] });
    expect(Array.from(r3[0].tokens)).toEqual(Array.from(r1[0].tokens));
    expect(Array.from(r3[1].tokens)).not.toEqual(Array.from(r1[0].tokens));
    // finish order: sequence 1 with a short budget first, then continued, equals one long call
    const s4 = policy.createSession();
    const [z] = await s4.add([{ ...prompts[1], key }]);
    const part1 = await s4.generate([z], { maxNewTokens: 10, stopTokens: [] });
    const part2 = await s4.generate([z], { maxNewTokens: 15, stopTokens: [] });
    expect([...part1[0].tokens, ...part2[0].tokens]).toEqual(Array.from(r1[0].tokens));
    for (const s of [s1, s2, s3, s4]) s.dispose();
  });

  test('run to run: the same seeds and batches give bit-identical tokens and log-probs', async () => {
    const run = async (): Promise<{ t: number[]; l: number[] }[]> => {
      const s = policy.createSession({ seed: 42 });
      const ids = await s.add(prompts.map((p, i) => ({ ...p, key: { step: 7, promptIndex: i, sampleIndex: 1 } })));
      const out = await s.generate(ids, { maxNewTokens: 20, temperature: 0.9, topP: 0.95 });
      s.dispose();
      return out.map((o) => ({ t: Array.from(o.tokens), l: Array.from(o.logp) }));
    };
    expect(await run()).toEqual(await run());
  });

  test('append after a stop (tool response with a new image) equals prefilling everything at once', async () => {
    const greedy = { maxNewTokens: 12, temperature: 0, stopTokens: [] as number[] };
    const s = policy.createSession();
    const [id] = await s.add([prompts[0]]);
    const first = await s.generate([id], greedy);
    const response = [...encode('\n<tool_response>zoomed '), IMAGE_ID, ...encode('</tool_response>\nassistant: ')];
    const view = randomView(rng, size);
    await s.append([{ id, input: { tokens: response, images: [view] } }]);
    const second = await s.generate([id], greedy);
    const all = Array.from(s.tokens(id));
    expect(all).toEqual([...prompts[0].tokens, ...first[0].tokens, ...response, ...second[0].tokens]);
    // reference: a fresh no-cache session given the whole prefix
    const ref = policy.createSession({ kvCache: false });
    const [rid] = await ref.add([{ tokens: [...prompts[0].tokens, ...first[0].tokens, ...response], images: [prompts[0].images![0], view] }]);
    const r = await ref.generate([rid], greedy);
    expect(Array.from(second[0].tokens)).toEqual(Array.from(r[0].tokens));
    s.dispose();
    ref.dispose();
  });

  test('stops: stop tokens, stop strings, max new tokens, max_seq; banned tokens are never sampled', async () => {
    const s = policy.createSession({ seed: 1 });
    const ids = await s.add(Array.from({ length: 6 }, (_, i) => ({ ...prompts[i % 3], key: { sampleIndex: i } })));
    // ban everything but a few ids so that stops are hit quickly
    const allowed = [65, 66, 67, EOS_ID, TOOL_CALL_END_ID];
    const banned = Array.from({ length: policy.config.vocabSize }, (_, i) => i).filter((i) => !allowed.includes(i));
    const out = await s.generate(ids, { maxNewTokens: 60, bannedTokens: banned, stopStrings: ['CAB'] });
    for (const o of out) {
      expect(o.tokens.every((t) => allowed.includes(t))).toBe(true);
      expect(o.text).toBe(decode(o.tokens));
      const last = o.tokens[o.tokens.length - 1];
      if (o.finishReason === 'stop_token') expect([EOS_ID, TOOL_CALL_END_ID]).toContain(last);
      else if (o.finishReason === 'stop_string') expect(o.text.endsWith('CAB')).toBe(true);
      else expect(o.finishReason).toBe('max_new_tokens');
      // no earlier stop was missed
      const inner = o.tokens.slice(0, -1);
      expect(inner.some((t) => t === EOS_ID || t === TOOL_CALL_END_ID)).toBe(false);
      expect(decode(inner).includes('CAB')).toBe(false);
    }
    expect(out.some((o) => o.finishReason === 'stop_token')).toBe(true);
    // a stop string made of sampled bytes: only A/B/C allowed, stop on "AB" or "CC"
    const onlyABC = Array.from({ length: policy.config.vocabSize }, (_, i) => i).filter((i) => i < 65 || i > 67);
    const sIds = await s.add(Array.from({ length: 4 }, (_, i) => ({ ...prompts[1], key: { sampleIndex: 10 + i } })));
    const outS = await s.generate(sIds, { maxNewTokens: 200, bannedTokens: onlyABC, stopStrings: ['AB', 'CC'] });
    for (const o of outS) {
      expect(o.finishReason).toBe('stop_string');
      expect(o.text.endsWith('AB') || o.text.endsWith('CC')).toBe(true);
      expect(/AB|CC/.test(o.text.slice(0, -1))).toBe(false);
    }
    // default bans: <|image|>, <|bos|>, <|pad|>, <tool_response> never appear even when forced likely
    const wte = policy.getParameter('wte.weight');
    const boosted = Float32Array.from(wte);
    const d = policy.config.dModel;
    for (const id of DEFAULT_BANNED_TOKENS) for (let i = 0; i < d; i++) boosted[id * d + i] *= 8;
    policy.setParameter('wte.weight', boosted);
    const s2 = policy.createSession();
    const ids2 = await s2.add(prompts);
    const out2 = await s2.generate(ids2, { maxNewTokens: 30, temperature: 2 });
    for (const o of out2) expect(o.tokens.some((t) => DEFAULT_BANNED_TOKENS.includes(t))).toBe(false);
    policy.setParameter('wte.weight', wte);
    // max_seq: a prompt close to the limit stops when the positions run out
    const s3 = policy.createSession();
    const long = encode('<|bos|>' + 'z'.repeat(policy.config.maxSeq - 5));
    const [lid] = await s3.add([{ tokens: long }]);
    const r3 = await s3.generate([lid], { maxNewTokens: 50, stopTokens: [] });
    expect(r3[0].finishReason).toBe('max_seq');
    expect(r3[0].tokens.length).toBe(policy.config.maxSeq - long.length); // the sequence fills max_seq exactly
    await expect(s3.append([{ id: lid, input: { tokens: [65, 66] } }])).rejects.toThrow(/max_seq/);
    for (const x of [s, s2, s3]) x.dispose();
  });

  test('a session refuses to continue after the weights changed (stale KV caches)', async () => {
    const s = policy.createSession();
    const ids = await s.add(prompts.slice(0, 1));
    const w = policy.getParameter('ln_f.bias');
    policy.setParameter('ln_f.bias', w); // any write counts
    await expect(s.generate(ids, { maxNewTokens: 2 })).rejects.toThrow(/weights changed/);
    await expect(s.append([{ id: ids[0], input: { tokens: [65] } }])).rejects.toThrow(/weights changed/);
    s.dispose();
    const fresh = policy.createSession();
    const [id] = await fresh.add(prompts.slice(0, 1));
    expect((await fresh.generate([id], { maxNewTokens: 2 }))[0].tokens.length).toBe(2);
    fresh.dispose();
  });

  test('release frees a sequence; unknown ids are rejected', async () => {
    const s = policy.createSession();
    const ids = await s.add(prompts.slice(0, 2));
    s.release([ids[0]]);
    await expect(s.generate([ids[0]], { maxNewTokens: 2 })).rejects.toThrow(/unknown or released sequence id/);
    const r = await s.generate([ids[1]], { maxNewTokens: 2 });
    expect(r[0].tokens.length).toBeGreaterThan(0);
    s.dispose();
    expect(() => s.tokens(ids[1])).toThrow(/disposed/);
  });
});
