// SPEC §7 bit for bit: a sequence's sampled tokens and logp depend only on its prompt (and the calls
// made on it) and its stream key — not on how many other sequences decode beside it, nor on whether
// its prompt's KV cache is its own or shared with forked siblings. Checked at every SIMD level, for
// head dims 8 and 16, across KV-cache block boundaries (128 positions) and fork points that are and
// are not multiples of 8.
import { NativePolicy, type GenerateResult, type GenerationSession, type SessionSequenceInput } from '../../src/policy';
import { setSimdLevel } from '../../src/native';
import { encode, EOS_ID, IMAGE_ID } from '../../src/tokenizer';
import type { ViewImage } from '../../src/tools/image';
import { expectClose } from '../helpers/compare';
import { Rng } from '../helpers/random';
import { digestWithThreads } from '../helpers/threads';
import { TEST_CONFIG, randomView, randomizeWeights } from './common';

type Out = { t: number[]; l: number[]; f: string };
const plain = (rs: GenerateResult[]): Out[] => rs.map((r) => ({ t: Array.from(r.tokens), l: Array.from(r.logp), f: r.finishReason }));
// Every 5th byte stops a sequence, so that they finish at different steps (the batch shrinks).
const OPTS = { maxNewTokens: 40, temperature: 1, stopTokens: [EOS_ID, ...Array.from({ length: 52 }, (_, i) => 5 * i)] };

describe.each([
  ['portable', 4],
  ['avx2', 4],
  ['avx512', 4],
  ['avx2', 2],
  ['avx512', 2],
] as const)('batch invariance and fork (%s kernels, %i heads)', (level, nHead) => {
  const policy = NativePolicy.create({ ...TEST_CONFIG, nHead, maxSeq: 320 }, { seed: 3 });
  randomizeWeights(policy, 17);
  const size = policy.config.imageSize;
  const rng = new Rng(40 + nHead);
  const view = (): ViewImage => randomView(rng, size);
  /** A prompt of `n` tokens, one of them an image (expands to N_p = 4 positions). */
  const prompt = (n: number): SessionSequenceInput => {
    const text = encode('<|bos|>' + 'abcdefghij'.repeat(20)).slice(0, n - 1);
    return { tokens: [...text.slice(0, 3), IMAGE_ID, ...text.slice(3)], images: [view()] };
  };
  beforeAll(() => setSimdLevel(level));
  afterAll(() => {
    setSimdLevel('avx512');
    policy.dispose();
  });

  async function run<T>(fn: (s: GenerationSession) => Promise<T>): Promise<T> {
    const s = policy.createSession({ seed: 11 });
    try {
      return await fn(s);
    } finally {
      s.dispose();
    }
  }

  test('batched decoding equals decoding each sequence alone (batches of 1, 3, 17 and 50)', async () => {
    const prompts = Array.from({ length: 50 }, (_, i) => ({ ...prompt(5 + ((i * 23) % 90)), key: { step: 2, promptIndex: i, sampleIndex: i % 3 } }));
    const alone: Out[] = [];
    for (const p of prompts) alone.push(...(await run(async (s) => plain(await s.generate(await s.add([p]), { ...OPTS, topP: 0.9 })))));
    expect(new Set(alone.map((o) => o.t.length)).size).toBeGreaterThan(3); // they finish at different steps
    for (const B of [3, 17, 50]) {
      const batched = await run(async (s) => plain(await s.generate(await s.add(prompts.slice(0, B)), { ...OPTS, topP: 0.9 })));
      expect(batched).toEqual(alone.slice(0, B));
    }
  });

  test('forked samples equal separately prefilled ones, over several turns; the parent goes on unaffected', async () => {
    // Prompt positions (the image is 4): 16 (8-aligned) and 19; past the first 128-position block,
    // 133 and 136 (aligned).
    for (const n of [13, 16, 130, 133]) {
      const p = prompt(n);
      const keys = Array.from({ length: 4 }, (_, g) => ({ step: 5, promptIndex: n, sampleIndex: g }));
      const replies = keys.map((_, g) => ({ tokens: [...encode(`\n<tool_response>r${g} `), IMAGE_ID, ...encode('</tool_response>\nassistant: ')], images: [view()] }));
      const short = keys.map((_, g) => ({ tokens: encode(`x${g}`) })); // ≤ 4 new rows: decode-step attention
      const turns = async (s: GenerationSession, ids: number[]): Promise<Out[]> => {
        const out = plain(await s.generate(ids, OPTS));
        await s.append(ids.map((id, g) => ({ id, input: replies[g] })));
        out.push(...plain(await s.generate(ids, OPTS)));
        await s.append(ids.map((id, g) => ({ id, input: short[g] })));
        out.push(...plain(await s.generate(ids, OPTS)));
        return out;
      };
      const separate = await run(async (s) => turns(s, await s.add(keys.map((key) => ({ ...p, key })))));
      const forked = await run(async (s) => {
        const [parent] = await s.add([{ ...p, key: { step: 5, promptIndex: n, sampleIndex: 99 } }]);
        const kids = await s.fork(parent, 4, keys);
        await s.generate([parent], { ...OPTS, stopTokens: [], maxNewTokens: 30 }); // writes into its own rows only
        const out = await turns(s, kids);
        expect(Array.from(s.tokens(kids[0])).slice(0, p.tokens.length)).toEqual(p.tokens);
        return out;
      });
      expect(forked).toEqual(separate);
      expect(forked.some((o) => o.t.length > 1)).toBe(true);
    }
  });

  test('default fork keys: the parent key with sample index j; a fork of a fork; releasing the parent first', async () => {
    const p = prompt(30);
    const key = { seed: 4, step: 1, promptIndex: 7 };
    const separate = await run(async (s) => plain(await s.generate(await s.add([0, 1, 2].map((g) => ({ ...p, key: { ...key, sampleIndex: g } }))), OPTS)));
    const forked = await run(async (s) => {
      const [parent] = await s.add([{ ...p, key: { ...key, sampleIndex: 5 } }]);
      const [a, b] = await s.fork(parent, 2);
      s.release([parent]);
      const [c] = await s.fork(b, 1, [{ sampleIndex: 2 }]); // keeps b's other key fields
      return plain(await s.generate([a, b, c], OPTS));
    });
    expect(forked).toEqual(separate);
  });

  test('a fork after the parent sampled continues its cache: greedy tokens and logp as a recomputed prefix', async () => {
    const p = prompt(40);
    const greedy = { maxNewTokens: 12, temperature: 0, stopTokens: [] as number[] };
    await run(async (s) => {
      const [parent] = await s.add([p]);
      await s.generate([parent], greedy); // its last token stays pending: fork prefills it first
      const kids = await s.fork(parent, 2);
      const outs = await s.generate(kids, greedy);
      expect(Array.from(outs[1].tokens)).toEqual(Array.from(outs[0].tokens));
      const ref = policy.createSession({ kvCache: false });
      const [rid] = await ref.add([{ tokens: Array.from(s.tokens(parent)), images: p.images }]);
      const r = await ref.generate([rid], greedy);
      ref.dispose();
      expect(Array.from(outs[0].tokens)).toEqual(Array.from(r[0].tokens));
      expectClose(outs[0].logp, r[0].logp, 1e-4, 1e-2);
    });
  });
});

// Generation does not depend on the thread count either: its GEMM paths and attention split work
// between threads without changing any element's operations (unlike the training forward's
// reductions). Child processes, so the shared pool keeps its size here.
test.each([
  ['a small model (one parallel region per decode step)', { dModel: 64, nLayer: 2, nHead: 2 }],
  ['a model over 8 MiB of weights (GEMM columns split per op)', { dModel: 256, nLayer: 3, nHead: 4 }],
])('generation is bit-identical with 1, 2 and 3 threads: %s', (_, dims) => {
  const cfg = { vocabSize: 268, maxSeq: 256, patch: 8, imageSize: 16, channels: 3, imageId: IMAGE_ID, seed: 1, ...dims };
  const body = `
    const model = addon.policyCreate(${JSON.stringify(cfg)});
    for (const t of addon.policyLayout({ model })) {
      const w = fill(t.size, t.offset + 1);
      if (t.name.includes('.weight') && t.shape.length === 2) for (let i = 0; i < w.length; i++) w[i] *= 0.3;
      addon.policyWrite({ model, which: 'params', offset: t.offset, data: w });
    }
    const session = addon.sessionCreate({ model, seed: 3 });
    const n = 12, lens = Array.from({ length: n }, (_, i) => 20 + 7 * i);
    const tokens = Int32Array.from(lens.flatMap((L, i) => Array.from({ length: L }, (_, k) => (k === 2 ? ${IMAGE_ID} : 65 + ((k * 7 + i) % 50)))));
    const images = Uint8Array.from({ length: n * 768 }, (_, i) => (i * 31) % 251);
    const keys = (m, base) => ({ seeds: new Array(m).fill(1), steps: new Array(m).fill(2), promptIndices: Array.from({ length: m }, (_, i) => base + i), sampleIndices: new Array(m).fill(0) });
    const ids = addon.sessionAdd({ session, tokens, lengths: Int32Array.from(lens), images, nImages: n, ...keys(n, 0) });
    const kids = addon.sessionFork({ session, id: ids[3], ...keys(5, 100) });
    const all = Int32Array.from([...ids, ...kids]);
    const out = addon.sessionGenerate({ session, ids: all, maxNewTokens: 24, temperature: 1, stopTokens: Int32Array.from([65, 70, 75]) });
    if (out.reduce((a, o) => a + o.tokens.length, 0) < 4 * all.length) throw new Error('too few decode steps to compare');
    return out.flatMap((o) => [o.tokens, o.logp]);`;
  const digests = [1, 2, 3].map((t) => digestWithThreads(t, body));
  expect(digests.map((d) => d.threads)).toEqual([1, 2, 3]);
  expect(new Set(digests.map((d) => d.digest)).size).toBe(1);
});
