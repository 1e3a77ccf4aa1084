// The native Qwen2-VL / Qwen2.5-VL engine against the plain-PyTorch reference's fixtures
// (python/reference/make_fixtures.py): image embeddings, per-token log-probs of a multi-image batch,
// logits rows, greedy KV-cache generation — for Qwen2-VL (tied head, F32 and BF16 checkpoints) and
// Qwen2.5-VL (untied head, window attention with several windows per image).
import * as fs from 'fs';
import * as path from 'path';
import { readSafetensors } from '../../../src/io/safetensors';
import { QwenVLModel } from '../../../src/models/qwen2_vl/engine';
import type { QwenSequence } from '../../../src/models/qwen2_vl/engine';
import type { QwenDtype } from '../../../src/native/qwen';

const FIX = path.resolve(__dirname, '../../fixtures');

interface Expected {
  images: { tensor: string; height: number; width: number }[];
  batch: {
    input_ids: number[][];
    attention_mask: number[][];
    image_indices: number[][];
    logprobs: (number | null)[][];
    logits: { batch_index: number; position: number; position_alone: number; logits: number[] }[];
    generated_ids: number[][];
    generated_logprobs: number[][];
    max_new_tokens: number;
    image_embeds: { sum: number; abs_sum: number; shape: number[]; rows: { row: number; values: number[] }[] };
  };
  single: { input_ids: number[]; image_indices: number[]; logprobs: (number | null)[]; generated_ids: number[] }[];
}

function fixture(family: string) {
  const dir = path.join(FIX, `${family}_tiny`);
  const expected = JSON.parse(fs.readFileSync(path.join(dir, 'expected.json'), 'utf8')) as Expected;
  const inputs = readSafetensors(path.join(dir, 'inputs.safetensors')).tensors;
  const images = expected.images.map((im) => ({ data: inputs.get(im.tensor)!.bytes, width: im.width, height: im.height, channels: 3 as const }));
  // The batch's sequences without their left padding.
  const seqs: QwenSequence[] = expected.batch.input_ids.map((ids, b) => ({
    ids: ids.filter((_, t) => expected.batch.attention_mask[b][t] === 1),
    images: expected.batch.image_indices[b].map((k) => images[k]),
  }));
  return { dir, expected, images, seqs };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number | null>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) if (b[i] !== null) m = Math.max(m, Math.abs(a[i] - (b[i] as number)));
  return m;
}

// [family, directory, load dtype, the storage it gives, tolerance]. The BF16 checkpoint holds the
// same model rounded to bf16 (the reference computes it in float32): kept in bf16 by default, where
// the bf16-weight GEMMs run, and widened to float32 on request.
const CASES: [string, string, 'auto' | 'float32', QwenDtype, number][] = [
  ['qwen2_vl', 'qwen2_vl_tiny', 'auto', 'float32', 1e-4],
  ['qwen2_vl', 'qwen2_vl_tiny_bf16', 'auto', 'bfloat16', 1e-4],
  ['qwen2_vl', 'qwen2_vl_tiny_bf16', 'float32', 'float32', 1e-4],
  ['qwen2_5_vl', 'qwen2_5_vl_tiny', 'auto', 'float32', 1e-4],
];

describe.each(CASES)('%s from %s (dtype %s)', (family, dirName, dtype, stored, tol) => {
  const f = fixture(family);
  let model: QwenVLModel;
  beforeAll(async () => {
    model = await QwenVLModel.load(path.join(FIX, dirName), { dtype });
  });
  afterAll(() => model.dispose());

  test(`keeps the matrices in ${stored} and vectors in float32`, () => {
    expect(model.dtype).toBe(stored);
    for (const t of model.tensors) expect(t.dtype).toBe(t.shape.length >= 2 ? stored : 'float32');
  });

  test('image embeddings of the batch equal the reference (rows and sums)', async () => {
    const order = f.expected.batch.image_indices.flat();
    const emb = await model.encodeImages(order.map((k) => f.images[k]));
    const e = f.expected.batch.image_embeds;
    expect(emb.length).toBe(e.shape[0] * e.shape[1]);
    const D = e.shape[1];
    for (const r of e.rows) expect(maxAbsDiff(emb.subarray(r.row * D, (r.row + 1) * D), r.values)).toBeLessThan(tol);
    let sum = 0;
    let abs = 0;
    for (const x of emb) {
      sum += x;
      abs += Math.abs(x);
    }
    expect(Math.abs(sum - e.sum)).toBeLessThan(tol * emb.length);
    expect(Math.abs(abs - e.abs_sum) / e.abs_sum).toBeLessThan(1e-5);
  });

  test('per-token log-probs of the multi-image batch equal the reference (padding stripped)', async () => {
    const { logp } = await model.score(f.seqs);
    f.seqs.forEach((s, b) => {
      const want = f.expected.batch.logprobs[b].slice(f.expected.batch.input_ids[b].length - s.ids.length);
      want[0] = 0; // the first real token: not scored (0 here, null in the reference)
      expect(maxAbsDiff(logp[b], want)).toBeLessThan(tol);
    });
  });

  test('logits rows equal the reference', async () => {
    const rows = f.expected.batch.logits;
    const prefixes = rows.map((r) => {
      const s = f.seqs[r.batch_index];
      const ids = Array.from(s.ids).slice(0, r.position_alone + 1);
      const pads = ids.filter((t) => t === model.config.tokens.image).length;
      // Keep only the images whose pads are wholly inside the prefix (a cut image cannot be encoded).
      let seen = 0;
      const images = (s.images ?? []).filter((im) => {
        const n = model.preprocess(im).mergedTokens;
        seen += n;
        return seen <= pads;
      });
      return { r, seq: { ids, images }, cut: seen - pads };
    });
    const whole = prefixes.filter((p) => (p.seq.images.length === 0 && !p.seq.ids.includes(model.config.tokens.image)) || p.seq.ids.filter((t) => t === model.config.tokens.image).length === p.seq.images.reduce((a, im) => a + model.preprocess(im).mergedTokens, 0));
    expect(whole.length).toBeGreaterThanOrEqual(f.seqs.length); // at least every sequence's last row
    const logits = await model.lastLogits(whole.map((p) => p.seq));
    whole.forEach((p, i) => expect(maxAbsDiff(logits[i], p.r.logits)).toBeLessThan(tol));
  });

  test('greedy KV-cache generation gives the reference ids and log-probs, batched and alone', async () => {
    const n = f.expected.batch.max_new_tokens;
    const batched = await model.generate(f.seqs, { maxNewTokens: n, temperature: 0 });
    batched.forEach((g, b) => {
      expect(Array.from(g.tokens)).toEqual(f.expected.batch.generated_ids[b]);
      expect(maxAbsDiff(g.logp, f.expected.batch.generated_logprobs[b])).toBeLessThan(tol);
      expect(g.finishReason).toBe('max_new_tokens');
    });
    for (const [b, s] of f.seqs.entries()) {
      const [alone] = await model.generate([s], { maxNewTokens: n, temperature: 0 });
      expect(Array.from(alone.tokens)).toEqual(f.expected.single[b].generated_ids);
      expect(maxAbsDiff(alone.logp, batched[b].logp)).toBeLessThan(1e-5);
    }
  });

  test('each sequence scored alone equals the reference alone', async () => {
    for (const [b, s] of f.seqs.entries()) {
      const { logp } = await model.score([s]);
      const want = [...f.expected.single[b].logprobs];
      want[0] = 0;
      expect(maxAbsDiff(logp[0], want)).toBeLessThan(tol);
    }
  });
});
