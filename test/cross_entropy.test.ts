import { crossEntropy, crossEntropyAsync, crossEntropyBackward, crossEntropyBackwardAsync, setSimdLevel } from '../src/native';
import { Rng } from './helpers/random';
import { expectClose, finiteDiff, toF64 } from './helpers/compare';
import { crossEntropyRef } from './helpers/ref_logprob';

const sameBits = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer).equals(Buffer.from(b.buffer));

function makeCase(seed: number, N: number, V: number) {
  const rng = new Rng(seed);
  const logits = rng.f32(N * V, 2);
  const targets = rng.i32(N, 0, V);
  if (N > 2) targets[1] = -100;
  if (N > 3) targets[N - 1] = -1;
  return { logits, targets };
}

describe.each(['portable', 'avx2', 'avx512'] as const)('crossEntropy (%s path)', (level) => {
  beforeAll(() => setSimdLevel(level));
  afterAll(() => setSimdLevel('avx512'));

  it.each([[1, 1], [4, 7], [6, 33], [5, 320], [3, 1000]])('loss matches float64 at N=%i V=%i (mean and sum)', (N, V) => {
    const { logits, targets } = makeCase(N + V, N, V);
    for (const reduction of ['mean', 'sum'] as const) {
      const ref = crossEntropyRef(logits, targets, V, 1, reduction);
      for (const reference of [false, true]) {
        const out = crossEntropy({ logits, targets, vocab: V, reduction, reference });
        expectClose([out.loss], [ref.loss], 2e-6, 1e-3);
        expect(out.count).toBe(ref.count);
        expect(out.dlogits).toBeNull();
      }
    }
  });

  it.each([[1, 1], [5, 7], [4, 33]])('gradient matches finite differences at N=%i V=%i', (N, V) => {
    const { logits, targets } = makeCase(7 * V, N, V);
    for (const reduction of ['mean', 'sum'] as const) {
      for (const tau of [1, 0.6]) {
        const x = toF64(logits);
        const f = (v: Float64Array) => 2.5 * crossEntropyRef(v, targets, V, tau, reduction).loss;
        const fd = Array.from({ length: N * V }, (_, i) => finiteDiff(f, x, i));
        const out = crossEntropy({ logits, targets, vocab: V, reduction, temperature: tau, withGrad: true, dloss: 2.5 });
        expectClose(out.dlogits!, fd, 2e-4, 1e-3);
        const back = crossEntropyBackward({ logits, targets, vocab: V, reduction, temperature: tau, dloss: 2.5 });
        expect(sameBits(back, out.dlogits!)).toBe(true);
        const ref = crossEntropyBackward({ logits, targets, vocab: V, reduction, temperature: tau, dloss: 2.5, reference: true });
        expectClose(ref, fd, 2e-4, 1e-3);
      }
    }
  });
});

describe('crossEntropy edge cases', () => {
  it('all rows ignored: loss 0, count 0, zero gradient (no NaN)', () => {
    const logits = new Rng(1).f32(3 * 5);
    const targets = Int32Array.from([-1, -100, -7]);
    const out = crossEntropy({ logits, targets, vocab: 5, withGrad: true });
    expect(out.loss).toBe(0);
    expect(out.count).toBe(0);
    expect(out.dlogits!.every((v) => v === 0)).toBe(true);
  });

  it('accumulate adds; lse from the forward gives the same gradient', () => {
    const N = 9, V = 50;
    const { logits, targets } = makeCase(4, N, V);
    const lse = new Float32Array(N);
    const out = crossEntropy({ logits, targets, vocab: V, lse, withGrad: true });
    const g = crossEntropyBackward({ logits, targets, vocab: V, lse });
    expect(sameBits(g, out.dlogits!)).toBe(true);
    const acc = new Float32Array(N * V).fill(1);
    crossEntropyBackward({ logits, targets, vocab: V, dlogits: acc, accumulate: true });
    expectClose(acc, Array.from(g, (v) => v + 1), 1e-6);
  });

  it('async equals sync and repeated calls are identical', async () => {
    const N = 200, V = 320;
    const { logits, targets } = makeCase(8, N, V);
    const a = crossEntropy({ logits, targets, vocab: V, withGrad: true });
    const b = await crossEntropyAsync({ logits, targets, vocab: V, withGrad: true });
    const c = crossEntropy({ logits, targets, vocab: V, withGrad: true });
    const d = await crossEntropyBackwardAsync({ logits, targets, vocab: V });
    expect(b.loss).toBe(a.loss);
    expect(c.loss).toBe(a.loss);
    expect(sameBits(a.dlogits!, b.dlogits!) && sameBits(a.dlogits!, c.dlogits!) && sameBits(a.dlogits!, d)).toBe(true);
  });
});
