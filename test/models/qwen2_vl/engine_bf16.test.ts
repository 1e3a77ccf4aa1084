// Weights kept in bfloat16 (QwenVLModel dtype 'bfloat16'): every matrix rounded to the nearest bf16 and
// stored as such, vectors in float32; the model then computes what a float32 model holding the same
// rounded weights computes — bit for bit where both take the packed GEMM path (the vision tower), to
// fp32 summation order elsewhere (the dot path of decode, the fused log-prob head of both splits).
// With decodeMath 'bf16' decode rows round the activations to bf16 (PyTorch bf16's numbers): still
// batch invariant, close to exact, and prefill / score unchanged.
import * as path from 'path';
import { QwenVLModel } from '../../../src/models/qwen2_vl/engine';
import type { QwenSequence } from '../../../src/models/qwen2_vl/engine';
import { bf16ToF32, f32ToBf16 } from '../../../src/native/gemm_bf16';
import { expectThrows } from '../../helpers/errors';
import { tinyQwen2VlConfig } from './tiny_config';

const FIX = path.resolve(__dirname, '../../fixtures');

const maxDiff = (a: Float32Array, b: Float32Array): number => {
  expect(a.length).toBe(b.length);
  return a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
};
const round = (x: Float32Array): Float32Array => bf16ToF32(f32ToBf16(x));
const sameBits = (a: Float32Array, b: Float32Array): boolean =>
  a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** A float32 model holding `b`'s (rounded) weights. */
function widened(b: QwenVLModel, f: QwenVLModel): QwenVLModel {
  for (const t of b.tensors) f.setTensor(t.name, b.getTensor(t.name));
  return f;
}

function image(w: number, h: number, salt: number) {
  return { data: Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 37 + salt * 11) % 256), width: w, height: h, channels: 3 as const };
}

/** Two sequences with images (several windows per image in Qwen2.5-VL) and one of text only. */
function batch(m: QwenVLModel): QwenSequence[] {
  const { image: pad, visionStart, visionEnd } = m.config.tokens;
  const withImage = (im: ReturnType<typeof image>, text: number[]): QwenSequence => ({
    ids: [1, visionStart, ...Array<number>(m.preprocess(im).mergedTokens).fill(pad), visionEnd, ...text],
    images: [im],
  });
  return [withImage(image(112, 84, 1), [5, 6, 7, 8]), { ids: [9, 10, 11, 12, 13, 14] }, withImage(image(56, 140, 2), [15, 16])];
}

async function expectSameModel(b: QwenVLModel, f: QwenVLModel): Promise<void> {
  const seqs = batch(b);
  const images = seqs.flatMap((s) => s.images ?? []);
  expect(sameBits(await b.encodeImages(images), await f.encodeImages(images))).toBe(true);
  const sb = await b.score(seqs), sf = await f.score(seqs);
  seqs.forEach((_, i) => {
    expect(maxDiff(sb.logp[i], sf.logp[i])).toBeLessThan(1e-5);
    expect(maxDiff(sb.entropy[i], sf.entropy[i])).toBeLessThan(1e-5);
  });
  const lb = await b.lastLogits(seqs), lf = await f.lastLogits(seqs);
  lb.forEach((l, i) => expect(maxDiff(l, lf[i])).toBeLessThan(1e-5));
  const gb = await b.generate(seqs, { maxNewTokens: 6, temperature: 0 }), gf = await f.generate(seqs, { maxNewTokens: 6, temperature: 0 });
  gb.forEach((g, i) => {
    expect(Array.from(g.tokens)).toEqual(Array.from(gf[i].tokens));
    expect(maxDiff(g.logp, gf[i].logp)).toBeLessThan(1e-5);
  });
}

describe('Qwen2.5-VL checkpoint (F32) loaded as bfloat16', () => {
  const dir = path.join(FIX, 'qwen2_5_vl_tiny');
  let b: QwenVLModel, f: QwenVLModel;
  beforeAll(async () => {
    b = await QwenVLModel.load(dir, { dtype: 'bfloat16' });
    f = await QwenVLModel.load(dir, { dtype: 'float32' });
  });
  afterAll(() => {
    b.dispose();
    f.dispose();
  });

  it('stores each matrix rounded to the nearest bf16 (query heads in checkpoint layout) and vectors exactly', () => {
    expect(b.dtype).toBe('bfloat16');
    for (const t of b.tensors) {
      const want = f.getTensor(t.name);
      expect([t.name, sameBits(b.getTensor(t.name), t.shape.length >= 2 ? round(want) : want)]).toEqual([t.name, true]);
    }
  });

  it('computes what float32 computes on the rounded weights: vision bit for bit, log-probs, logits and greedy ids', async () => {
    await expectSameModel(b, widened(b, f));
  });
});

describe('random Qwen2-VL with a 5,000-token vocabulary (the head\'s vocabulary split)', () => {
  const config = tinyQwen2VlConfig({
    vocab_size: 5000,
    tie_word_embeddings: false,
    image_token_id: 4990,
    video_token_id: 4991,
    vision_start_token_id: 4992,
    vision_end_token_id: 4993,
  });
  const models: QwenVLModel[] = [];
  const make = (dtype: 'float32' | 'bfloat16'): QwenVLModel => {
    const m = QwenVLModel.random(config, 3, { dtype });
    models.push(m);
    return m;
  };
  afterAll(() => models.forEach((m) => m.dispose()));

  it('draws the float32 model\'s weights, rounded', () => {
    const b = make('bfloat16'), f = make('float32');
    for (const t of b.tensors) {
      const want = f.getTensor(t.name);
      expect([t.name, sameBits(b.getTensor(t.name), t.shape.length >= 2 ? round(want) : want)]).toEqual([t.name, true]);
    }
  });

  it('computes what float32 computes on the rounded weights', async () => {
    const b = make('bfloat16');
    await expectSameModel(b, widened(b, make('float32')));
  });

  it('takes bf16 bits (Uint16Array) as they are, widens them into float32 vectors, and rejects NaN / Inf bits', () => {
    const b = make('bfloat16');
    const name = 'model.layers.0.mlp.up_proj.weight';
    const bits = f32ToBf16(Float32Array.from({ length: 96 * 64 }, (_, i) => Math.sin(i) * 0.1));
    b.setTensor(name, bits);
    expect(sameBits(b.getTensor(name), bf16ToF32(bits))).toBe(true);
    const norm = 'model.norm.weight';
    const nb = f32ToBf16(Float32Array.from({ length: 64 }, (_, i) => 1 + i / 64));
    b.setTensor(norm, nb);
    expect(sameBits(b.getTensor(norm), bf16ToF32(nb))).toBe(true);
    const nan = bits.slice();
    nan[17] = 0x7fc0;
    expectThrows(() => b.setTensor(name, nan), 'RangeError', /`data`.*element 17 is NaN/);
    nan[17] = 0xff80;
    expectThrows(() => b.setTensor(name, nan), 'RangeError', /element 17 is infinite/);
    expectThrows(() => b.setTensor(name, bits.subarray(1)), 'RangeError', /`data`.*length/);
  });
});

describe("decodeMath 'bf16' (decode rows with activations rounded to bf16)", () => {
  const dir = path.join(FIX, 'qwen2_5_vl_tiny');
  let fast: QwenVLModel, exact: QwenVLModel;
  beforeAll(async () => {
    fast = await QwenVLModel.load(dir, { dtype: 'bfloat16', decodeMath: 'bf16' });
    exact = await QwenVLModel.load(dir, { dtype: 'bfloat16' });
  });
  afterAll(() => {
    fast.dispose();
    exact.dispose();
  });

  it('scores exactly as exact math does, and decodes close to it (bf16 rounding), not equal', async () => {
    const seqs = batch(fast);
    const a = await fast.score(seqs), b = await exact.score(seqs);
    seqs.forEach((_, i) => expect(sameBits(a.logp[i], b.logp[i])).toBe(true));
    const la = await fast.lastLogits(seqs), lb = await exact.lastLogits(seqs);
    const diffs = la.map((l, i) => maxDiff(l, lb[i]));
    for (const d of diffs) expect(d).toBeLessThan(0.05);
    expect(Math.max(...diffs)).toBeGreaterThan(0); // the activations really are rounded
  });

  it('is batch invariant: a sequence samples the same tokens with the same log-probs alone or in a batch', async () => {
    const seqs = batch(fast);
    const run = async (ss: QwenSequence[], keys: { seed: number; promptIndex: number }[]) => {
      const session = fast.createSession();
      try {
        return await session.generate(await session.add(ss, keys), { maxNewTokens: 8, temperature: 1 });
      } finally {
        session.dispose();
      }
    };
    const key = { seed: 5, promptIndex: 3 };
    const [alone] = await run([seqs[0]], [key]);
    const batched = await run([seqs[1], seqs[0], seqs[2]], [{ seed: 5, promptIndex: 1 }, key, { seed: 5, promptIndex: 2 }]);
    expect(Array.from(batched[1].tokens)).toEqual(Array.from(alone.tokens));
    expect(sameBits(batched[1].logp, alone.logp)).toBe(true);
  });

  it('needs bf16 weights', async () => {
    await expect(QwenVLModel.load(dir, { dtype: 'float32', decodeMath: 'bf16' })).rejects.toThrow(/`decodeMath` 'bf16' needs `dtype` 'bfloat16'/);
  });
});
