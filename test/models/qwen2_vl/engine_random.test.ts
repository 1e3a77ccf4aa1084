// QwenVLModel.random: native random weights (N(0, 0.02) matrices, norm weights 1, biases 0) that depend
// on the seed alone, on a tiny Qwen2-VL config; the model then scores and generates.
import { QwenVLModel } from '../../../src/models/qwen2_vl/engine';
import { tinyQwen2VlConfig } from './tiny_config';

const CONFIG = tinyQwen2VlConfig();

const image = { data: Uint8Array.from({ length: 56 * 56 * 3 }, (_, i) => (i * 37) % 256), width: 56, height: 56, channels: 3 as const };

describe('QwenVLModel.random', () => {
  const models: QwenVLModel[] = [];
  const make = (seed: number): QwenVLModel => {
    const m = QwenVLModel.random(CONFIG, seed);
    models.push(m);
    return m;
  };
  afterAll(() => models.forEach((m) => m.dispose()));

  it('gives the same weights for a seed and different ones for another', () => {
    const a = make(7), b = make(7), c = make(8);
    for (const t of a.tensors) {
      expect(a.getTensor(t.name)).toEqual(b.getTensor(t.name));
    }
    const name = 'model.layers.0.self_attn.q_proj.weight';
    const x = a.getTensor(name), y = c.getTensor(name);
    let same = 0;
    for (let i = 0; i < x.length; i++) same += Number(x[i] === y[i]);
    expect(same).toBe(0);
  });

  it('has N(0, 0.02) matrices, unit norm weights and zero biases', () => {
    const m = make(1);
    for (const t of m.tensors) {
      const v = m.getTensor(t.name);
      if (t.name.endsWith('.bias')) {
        expect(v.every((x) => x === 0)).toBe(true);
      } else if (/norm|ln_q/.test(t.name)) {
        expect(v.every((x) => x === 1)).toBe(true);
      } else {
        let s = 0, ss = 0;
        for (const x of v) {
          s += x;
          ss += x * x;
        }
        const mean = s / v.length, std = Math.sqrt(ss / v.length - mean * mean);
        expect(Math.abs(mean)).toBeLessThan(6 * 0.02 / Math.sqrt(v.length));
        expect(Math.abs(std - 0.02)).toBeLessThan(0.02 * 6 / Math.sqrt(2 * v.length));
      }
    }
    // Two tensors of the same shape are drawn from different streams.
    expect(m.getTensor('model.layers.0.mlp.gate_proj.weight')).not.toEqual(m.getTensor('model.layers.0.mlp.up_proj.weight'));
  });

  it('draws element e of tensor i, in checkpoint layout, from normal_pair(mix64(mix64(seed) ^ i), e / 2)', () => {
    // native/model/rng.h in BigInt; q_proj is stored head-permuted, so this also checks the layout.
    const M = (1n << 64n) - 1n;
    const mix64 = (x: bigint): bigint => {
      x = (x + 0x9e3779b97f4a7c15n) & M;
      x = ((x ^ (x >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
      x = ((x ^ (x >> 27n)) * 0x94d049bb133111ebn) & M;
      return x ^ (x >> 31n);
    };
    const uniform = (key: bigint, n: bigint): number => Number(mix64(key ^ mix64(n)) >> 11n) / 2 ** 53;
    const m = make(11);
    for (const name of ['model.layers.1.self_attn.q_proj.weight', 'model.embed_tokens.weight']) {
      const i = m.tensors.findIndex((t) => t.name === name);
      const key = mix64(mix64(11n) ^ BigInt(i));
      const v = m.getTensor(name);
      for (const e of [0, 1, 2, 3, v.length - 2, v.length - 1]) {
        const p = BigInt(e >> 1);
        const r = Math.sqrt(-2 * Math.log(Math.max(uniform(key, 2n * p), 1e-300))), a = 2 * Math.PI * uniform(key, 2n * p + 1n);
        expect(v[e]).toBeCloseTo(0.02 * (e % 2 ? r * Math.sin(a) : r * Math.cos(a)), 6);
      }
    }
  });

  it('scores and generates', async () => {
    const m = make(5);
    const { image: img, visionStart, visionEnd } = CONFIG.tokens;
    const ids = [1, 2, visionStart, ...Array<number>(4).fill(img), visionEnd, 3, 4, 5];
    const seqs = [{ ids, images: [image] }, { ids: [9, 8, 7] }];
    const scored = await m.score(seqs);
    expect(scored.logp[0]).toHaveLength(ids.length);
    for (const lp of scored.logp) for (const x of lp.subarray(1)) {
      expect(Number.isFinite(x)).toBe(true);
      expect(x).toBeLessThan(0);
    }
    // Near-uniform at init: log-probs close to -log V.
    expect(Math.abs(scored.logp[1][2] + Math.log(CONFIG.text.vocabSize))).toBeLessThan(1);
    const gen = await m.generate(seqs, { maxNewTokens: 5, temperature: 0 });
    expect(gen.map((g) => g.tokens.length)).toEqual([5, 5]);
    const again = await m.generate(seqs, { maxNewTokens: 5, temperature: 0 });
    expect(again.map((g) => Array.from(g.tokens))).toEqual(gen.map((g) => Array.from(g.tokens)));
  });

  it('refuses a seed that is not a non-negative safe integer', () => {
    expect(() => QwenVLModel.random(CONFIG, -1)).toThrow(RangeError);
    expect(() => QwenVLModel.random(CONFIG, 1.5)).toThrow(RangeError);
  });
});
