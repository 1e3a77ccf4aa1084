// Qwen generation sessions: a multi-turn episode (prompt, sampled turn, appended segment with a new
// image, sampled turn) kept in KV caches gives what one stateless generation over the whole sequence
// gives; forks continue their parent exactly; stale sessions and bad handles are refused. With the
// matrices in float32 and in bfloat16.
import * as fs from 'fs';
import * as path from 'path';
import { readSafetensors } from '../../../src/io/safetensors';
import { QwenVLModel } from '../../../src/models/qwen2_vl/engine';
import type { QwenSequence } from '../../../src/models/qwen2_vl/engine';
import { expectRejects } from '../../helpers/errors';

const DIR = path.resolve(__dirname, '../../fixtures/qwen2_5_vl_tiny');
const expected = JSON.parse(fs.readFileSync(path.join(DIR, 'expected.json'), 'utf8')) as { images: { tensor: string; height: number; width: number }[]; special_tokens: Record<string, number> };
const inputs = readSafetensors(path.join(DIR, 'inputs.safetensors')).tensors;
const images = expected.images.map((im) => ({ data: inputs.get(im.tensor)!.bytes, width: im.width, height: im.height, channels: 3 as const }));
const S = expected.special_tokens;

let model: QwenVLModel;

/** <|vision_start|> pads <|vision_end|> for image k, then text ids. */
function withImage(k: number, text: number[]): QwenSequence {
  const pads = model.preprocess(images[k]).mergedTokens;
  return { ids: [S['<|vision_start|>'], ...Array(pads).fill(S['<|image_pad|>']), S['<|vision_end|>'], ...text], images: [images[k]] };
}
const cat = (...parts: QwenSequence[]): QwenSequence => ({ ids: parts.flatMap((p) => Array.from(p.ids)), images: parts.flatMap((p) => p.images ?? []) });
const maxDiff = (a: Float32Array, b: Float32Array): number => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);

// Matrices in float32, and in bfloat16 (the checkpoint's weights rounded; the bf16-weight GEMMs run).
describe.each(['float32', 'bfloat16'] as const)('weights stored in %s', (dtype) => {
  beforeAll(async () => {
    model = await QwenVLModel.load(DIR, { dtype });
  });
  afterAll(() => model.dispose());

  test('a multi-turn episode in a session equals one stateless generation over the whole sequence', async () => {
    const prompt = cat({ ids: [S['<|im_start|>'], 11, 12] }, withImage(0, [13, 14, S['<|im_end|>'], S['<|im_start|>']]));
    const turn2 = cat({ ids: [S['<|im_end|>'], S['<|im_start|>'], 21] }, withImage(2, [22, 23, S['<|im_end|>'], S['<|im_start|>']]));
    const session = model.createSession();
    try {
      const [id] = await session.add([prompt]);
      const [g1] = await session.generate([id], { maxNewTokens: 5, temperature: 0 });
      await session.append([{ id, input: turn2 }]);
      const [g2] = await session.generate([id], { maxNewTokens: 6, temperature: 0 });
      const whole = cat(prompt, { ids: Array.from(g1.tokens) }, turn2);
      const [ref] = await model.generate([whole], { maxNewTokens: 6, temperature: 0 });
      expect(Array.from(g2.tokens)).toEqual(Array.from(ref.tokens));
      expect(maxDiff(g2.logp, ref.logp)).toBeLessThan(1e-5);
      expect(Array.from(session.tokens(id))).toEqual([...Array.from(whole.ids), ...Array.from(g2.tokens)]);
      // And the session's sampled log-probs are what scoring the whole episode gives.
      const full = cat(whole, { ids: Array.from(g2.tokens) });
      const { logp } = await model.score([full]);
      expect(maxDiff(logp[0].subarray(full.ids.length - g2.tokens.length), g2.logp)).toBeLessThan(1e-4);
    } finally {
      session.dispose();
    }
  });

  test('a stream counter resumes sampling: turn 2 of a session equals a fresh add of the whole context with counter = turn-1 tokens', async () => {
    const prompt = cat({ ids: [S['<|im_start|>'], 11, 12] }, withImage(0, [13, 14, S['<|im_end|>'], S['<|im_start|>']]));
    const turn2 = cat({ ids: [S['<|im_end|>'], S['<|im_start|>'], 21] }, withImage(2, [22, 23, S['<|im_end|>'], S['<|im_start|>']]));
    const key = { seed: 5, step: 1, promptIndex: 2, sampleIndex: 3 };
    for (const temperature of [1, 0]) {
      const session = model.createSession();
      try {
        const [id] = await session.add([prompt], [key]);
        const [g1] = await session.generate([id], { maxNewTokens: 5, temperature });
        await session.append([{ id, input: turn2 }]);
        const [g2] = await session.generate([id], { maxNewTokens: 6, temperature });
        const whole = cat(prompt, { ids: Array.from(g1.tokens) }, turn2);
        const [resumed] = await session.add([whole], [{ ...key, counter: g1.tokens.length }]);
        const [r2] = await session.generate([resumed], { maxNewTokens: 6, temperature });
        expect(Array.from(r2.tokens)).toEqual(Array.from(g2.tokens));
        expect(maxDiff(r2.logp, g2.logp)).toBeLessThan(1e-5);
        if (temperature > 0) {
          // Counted from 0 instead, the stream draws other numbers: the counter is what made them equal.
          const [fresh] = await session.add([whole], [key]);
          const [f2] = await session.generate([fresh], { maxNewTokens: 6, temperature });
          expect(Array.from(f2.tokens)).not.toEqual(Array.from(g2.tokens));
        }
      } finally {
        session.dispose();
      }
    }
    const session = model.createSession();
    try {
      await expectRejects(session.add([prompt], [{ ...key, counter: -1 }]), 'RangeError', /sampleKeys\[0\]\.counter/);
    } finally {
      session.dispose();
    }
  });

  test('forks continue their parent: greedy children equal the parent, sampled children follow their own keys', async () => {
    const prompt = cat({ ids: [S['<|im_start|>'], 31] }, withImage(1, [32, S['<|im_end|>'], S['<|im_start|>']]));
    const session = model.createSession();
    try {
      const [p] = await session.add([prompt]);
      const kids = await session.fork(p, 3);
      const greedy = await session.generate([p, ...kids], { maxNewTokens: 6, temperature: 0 });
      for (const g of greedy.slice(1)) expect(Array.from(g.tokens)).toEqual(Array.from(greedy[0].tokens));
      const twins = await session.fork(p, 2, [{ seed: 5, sampleIndex: 1 }, { seed: 5, sampleIndex: 1 }]);
      const other = await session.fork(p, 1, [{ seed: 5, sampleIndex: 2 }]);
      const s = await session.generate([...twins, ...other], { maxNewTokens: 12, temperature: 1.5 });
      expect(Array.from(s[0].tokens)).toEqual(Array.from(s[1].tokens));
      expect(Array.from(s[2].tokens)).not.toEqual(Array.from(s[0].tokens));
      session.release([...kids, ...twins]);
      expect(() => session.tokens(kids[0])).toThrow(/no sequence/);
    } finally {
      session.dispose();
    }
  });

  test('forked siblings share the prompt cache blocks yet each sees only its own turns: each equals a stateless generation', async () => {
    // A prompt whose length is not a multiple of 8 (the fork copies its last rows), a first turn
    // sampled per child, then a different tool result with a new image appended to each child.
    const prompt = cat({ ids: [S['<|im_start|>'], 71, 72, 73] }, withImage(0, [74, S['<|im_end|>'], S['<|im_start|>']]));
    const session = model.createSession();
    try {
      const [p] = await session.add([prompt]);
      const kids = await session.fork(p, 3, [0, 1, 2].map((i) => ({ seed: 9, sampleIndex: i })));
      const first = await session.generate(kids, { maxNewTokens: 4, temperature: 1.2 });
      const results = kids.map((_, i) => cat({ ids: [S['<|im_end|>'], S['<|im_start|>'], 80 + i] }, withImage(i % 3, [90 + i, S['<|im_end|>'], S['<|im_start|>']])));
      await session.append(kids.map((id, i) => ({ id, input: results[i] })));
      const second = await session.generate(kids, { maxNewTokens: 5, temperature: 0 });
      for (const [i] of kids.entries()) {
        const whole = cat(prompt, { ids: Array.from(first[i].tokens) }, results[i]);
        const [ref] = await model.generate([whole], { maxNewTokens: 5, temperature: 0 });
        expect(Array.from(second[i].tokens)).toEqual(Array.from(ref.tokens));
        expect(maxDiff(second[i].logp, ref.logp)).toBeLessThan(1e-5);
      }
      // The parent is untouched by its children's rows.
      const [again] = await session.generate([p], { maxNewTokens: 3, temperature: 0 });
      const [alone] = await model.generate([prompt], { maxNewTokens: 3, temperature: 0 });
      expect(Array.from(again.tokens)).toEqual(Array.from(alone.tokens));
    } finally {
      session.dispose();
    }
  });

  test('a session refuses to go on after a weight write, and names bad handles', async () => {
    const m = await QwenVLModel.load(DIR);
    const session = m.createSession();
    try {
      const [id] = await session.add([{ ids: [1, 2, 3] }]);
      await expect(session.generate([id + 100])).rejects.toThrow(/no sequence/);
      m.setTensor('model.norm.weight', m.getTensor('model.norm.weight')); // same values: still a write
      await expectRejects(session.generate([id], { maxNewTokens: 1 }), 'Error', /weights changed since this session was created/);
    } finally {
      session.dispose();
      m.dispose();
    }
  });

  test('batch invariance (SPEC §7): a sequence samples the same tokens with the same log-probs alone or in a batch', async () => {
    const a = cat({ ids: [S['<|im_start|>'], 41] }, withImage(0, [42, S['<|im_end|>'], S['<|im_start|>']]));
    const b = cat({ ids: [S['<|im_start|>'], 51, 52, 53] }, withImage(2, [54, 55, S['<|im_end|>'], S['<|im_start|>']]));
    const c = { ids: [S['<|im_start|>'], 61, 62, 63, 64, 65, 66, 67, 68, S['<|im_end|>'], S['<|im_start|>']] };
    const run = async (seqs: QwenSequence[], keys: { seed: number; promptIndex: number }[]) => {
      const session = model.createSession();
      try {
        const ids = await session.add(seqs, keys);
        return await session.generate(ids, { maxNewTokens: 10, temperature: 1 });
      } finally {
        session.dispose();
      }
    };
    const key = { seed: 3, promptIndex: 7 };
    const [alone] = await run([a], [key]);
    const batched = await run([b, a, c], [{ seed: 3, promptIndex: 1 }, key, { seed: 3, promptIndex: 2 }]);
    expect(Array.from(batched[1].tokens)).toEqual(Array.from(alone.tokens));
    expect(Array.from(batched[1].logp)).toEqual(Array.from(alone.logp)); // bit for bit
  });
});
