import {
  logprob, logprobAsync, logprobBackward, logprobBackwardAsync, logSoftmax, logSoftmaxAsync,
  setSimdLevel, setNumThreads, nativeInfo,
} from '../src/native';
import { Rng } from './helpers/random';
import { expectClose, finiteDiff, toF64 } from './helpers/compare';
import { logprobRef, logprobObjective, logprobGradRef, logSoftmaxRef } from './helpers/ref_logprob';

const sameBits = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer).equals(Buffer.from(b.buffer));

function makeCase(seed: number, N: number, V: number, scale = 3, offset = 0) {
  const rng = new Rng(seed);
  const logits = rng.f32(N * V, scale);
  for (let i = 0; i < logits.length; i++) logits[i] += offset;
  const targets = rng.i32(N, 0, V);
  if (N > 2) targets[1] = -1; // ignored rows, both spellings
  if (N > 4) targets[3] = -100;
  return { rng, logits, targets };
}

describe.each(['portable', 'avx2', 'avx512'] as const)('logprob (%s path)', (level) => {
  beforeAll(() => setSimdLevel(level));
  afterAll(() => setSimdLevel('avx512'));

  it.each([
    [1, 1], [3, 7], [5, 8], [5, 15], [5, 16], [5, 17], [6, 33], [4, 64], [4, 65], [3, 81], [7, 320], [3, 1000],
    [3, 4096], [3, 4097], [2, 9001], // beyond 4096 the forward takes the online (one-pass) path
  ])('forward matches float64 at N=%i V=%i', (N, V) => {
    for (const tau of [1, 0.7, 2.5]) {
      const { logits, targets } = makeCase(N * 1000 + V, N, V);
      const ref = logprobRef(logits, targets, V, tau);
      const out = logprob({ logits, targets, vocab: V, temperature: tau, withEntropy: true });
      expectClose(out.logp, ref.logp, 2e-6, 1);
      expectClose(out.entropy!, ref.entropy, 2e-6, 1);
      expectClose(out.lse, ref.lse, 2e-6, 1);
      const r = logprob({ logits, targets, vocab: V, temperature: tau, withEntropy: true, reference: true });
      expectClose(r.logp, ref.logp, 1e-6, 1);
      expectClose(r.entropy!, ref.entropy, 1e-6, 1);
    }
  });

  it('is stable for large logits and for peaked and flat rows', () => {
    for (const V of [100, 4500]) stableCase(V);
  });

  function stableCase(V: number) {
    const N = 6;
    const { logits, targets } = makeCase(11, N, V, 3, 80); // offset 80: exp would overflow without the max
    for (let k = 0; k < V; k++) logits[2 * V + k] = 5; // flat row: entropy log V
    logits[4 * V + 7] = 60; // peaked row (offset is 80, so index 7 is far below the rest)
    for (let k = 0; k < V; k++) logits[5 * V + k] = k === 3 ? 200 : 0; // one-hot row
    targets[5] = 3;
    const ref = logprobRef(logits, targets, V, 1);
    const out = logprob({ logits, targets, vocab: V, withEntropy: true });
    expectClose(out.logp, ref.logp, 2e-6, 1);
    expectClose(out.entropy!, ref.entropy, 2e-6, 1);
    expect(out.entropy![2]).toBeCloseTo(Math.log(V), 5);
    expect(out.logp[5]).toBe(0);
    expect(out.entropy![5]).toBe(0);
  }

  it('-inf logits (masked vocabulary) get probability 0 and gradient 0', () => {
    const N = 4, V = 37;
    const { rng, logits, targets } = makeCase(12, N, V);
    for (let r = 0; r < N; r++) for (let k = 0; k < V; k += 3) if (k !== targets[r]) logits[r * V + k] = -Infinity;
    const ref = logprobRef(logits, targets, V, 1);
    const out = logprob({ logits, targets, vocab: V, withEntropy: true });
    expectClose(out.logp, ref.logp, 2e-6, 1);
    expectClose(out.entropy!, ref.entropy, 2e-6, 1);
    const a = rng.f32(N), b = rng.f32(N);
    const d = logprobBackward({ logits, targets, vocab: V, lse: out.lse, dlogp: a, dentropy: b });
    expectClose(d, logprobGradRef(logits, targets, V, 1, a, b), 1e-5, 1e-3);
    for (let k = 0; k < V; k += 3) if (k !== targets[0]) expect(d[k]).toBe(0);
  });

  it('a NaN logit makes its row NaN, never a silently finite value', () => {
    for (const V of [5, 40, 100, 5000]) {
      for (const at of [0, 3, V - 1]) {
        const logits = new Rng(V + at).f32(2 * V);
        logits[at] = NaN;
        const out = logprob({ logits, targets: Int32Array.from([1, 1]), vocab: V, withEntropy: true });
        expect([out.logp[0], out.entropy![0], out.lse[0]].every(Number.isNaN)).toBe(true);
        expect(Number.isFinite(out.logp[1]) && Number.isFinite(out.entropy![1])).toBe(true);
      }
    }
  });

  it.each([[1, 1], [3, 7], [2, 33], [2, 20]])('backward matches finite differences at N=%i V=%i (logp and entropy)', (N, V) => {
    const tau = 0.8;
    const { rng, logits, targets } = makeCase(77 + V, N, V, 1.5);
    const a = rng.f32(N), b = rng.f32(N);
    const { lse } = logprob({ logits, targets, vocab: V, temperature: tau });
    const d = logprobBackward({ logits, targets, vocab: V, temperature: tau, lse, dlogp: a, dentropy: b });
    const x = toF64(logits);
    const f = (v: Float64Array) => logprobObjective(v, targets, V, tau, a, b);
    const fd = Array.from({ length: N * V }, (_, i) => finiteDiff(f, x, i));
    expectClose(d, fd, 2e-4, 1e-3);
    // the reference kernel too
    const dr = logprobBackward({ logits, targets, vocab: V, temperature: tau, dlogp: a, dentropy: b, reference: true });
    expectClose(dr, fd, 2e-4, 1e-3);
  });

  it.each([[5, 320], [3, 1000], [9, 129], [3, 5003]])('backward matches the float64 gradient at N=%i V=%i', (N, V) => {
    const { rng, logits, targets } = makeCase(5 + V, N, V);
    const a = rng.f32(N), b = rng.f32(N);
    const { lse } = logprob({ logits, targets, vocab: V });
    for (const [da, db] of [[a, b], [a, null], [null, b]] as const) {
      const d = logprobBackward({ logits, targets, vocab: V, lse, dlogp: da ?? undefined, dentropy: db ?? undefined });
      // floor 1e-2: the logp and entropy terms cancel in places; errors are relative to their size
      expectClose(d, logprobGradRef(logits, targets, V, 1, da, db), 2e-5, 1e-2);
      // lse omitted: recomputed, same result
      const d2 = logprobBackward({ logits, targets, vocab: V, dlogp: da ?? undefined, dentropy: db ?? undefined });
      expectClose(d2, d, 1e-6, 1e-6);
    }
    // ignored rows get no gradient
    if (N > 2) expect(d0(logits, targets, V, a).subarray(V, 2 * V).every((v) => v === 0)).toBe(true);
    // accumulate adds onto what is there
    const base = logprobBackward({ logits, targets, vocab: V, lse, dlogp: a });
    const acc = new Float32Array(N * V).fill(0.5);
    logprobBackward({ logits, targets, vocab: V, lse, dlogp: a, dlogits: acc, accumulate: true });
    expectClose(acc, Array.from(base, (v) => v + 0.5), 1e-6);
    // with accumulate, ignored rows are left untouched
    if (N > 2) expect(acc[V]).toBe(0.5);
  });

  it.each([[4, 1], [3, 9], [5, 320]])('logSoftmax matches float64 at N=%i V=%i (also in place)', (N, V) => {
    const { logits } = makeCase(3 + V, N, V);
    const ref = logSoftmaxRef(logits, V, 1.3);
    expectClose(logSoftmax({ logits, vocab: V, temperature: 1.3 }), ref, 2e-6, 1);
    expectClose(logSoftmax({ logits, vocab: V, temperature: 1.3, reference: true }), ref, 1e-6, 1);
    const copy = Float32Array.from(logits);
    logSoftmax({ logits: copy, vocab: V, temperature: 1.3, out: copy });
    expectClose(copy, ref, 2e-6, 1);
  });
});

function d0(logits: Float32Array, targets: Int32Array, V: number, a: Float32Array) {
  return logprobBackward({ logits, targets, vocab: V, dlogp: a, dlogits: new Float32Array(logits.length).fill(7) });
}

describe('logprob determinism, async and threads', () => {
  const N = 97, V = 320;
  const { rng, logits, targets } = makeCase(99, N, V);
  const a = rng.f32(N), b = rng.f32(N);
  afterAll(() => setNumThreads(0));

  it('two calls, async and sync, and every thread count give the same bits', async () => {
    const f1 = logprob({ logits, targets, vocab: V, withEntropy: true, temperature: 0.9 });
    const f2 = await logprobAsync({ logits, targets, vocab: V, withEntropy: true, temperature: 0.9 });
    const g1 = logprobBackward({ logits, targets, vocab: V, temperature: 0.9, lse: f1.lse, dlogp: a, dentropy: b });
    const g2 = await logprobBackwardAsync({ logits, targets, vocab: V, temperature: 0.9, lse: f1.lse, dlogp: a, dentropy: b });
    const s1 = logSoftmax({ logits, vocab: V });
    const s2 = await logSoftmaxAsync({ logits, vocab: V });
    expect(sameBits(f1.logp, f2.logp) && sameBits(f1.entropy!, f2.entropy!) && sameBits(f1.lse, f2.lse)).toBe(true);
    expect(sameBits(g1, g2)).toBe(true);
    expect(sameBits(s1, s2)).toBe(true);
    setNumThreads(1);
    const f3 = logprob({ logits, targets, vocab: V, withEntropy: true, temperature: 0.9 });
    const g3 = logprobBackward({ logits, targets, vocab: V, temperature: 0.9, lse: f1.lse, dlogp: a, dentropy: b });
    setNumThreads(3);
    const f4 = logprob({ logits, targets, vocab: V, withEntropy: true, temperature: 0.9 });
    setNumThreads(0);
    expect(sameBits(f1.logp, f3.logp) && sameBits(f1.entropy!, f3.entropy!) && sameBits(f1.logp, f4.logp)).toBe(true);
    expect(sameBits(g1, g3)).toBe(true);
    expect(nativeInfo().threads).toBeGreaterThanOrEqual(1);
  });

  it('empty input (N = 0) is fine', () => {
    const out = logprob({ logits: new Float32Array(0), targets: new Int32Array(0), vocab: 5, withEntropy: true });
    expect(out.logp.length).toBe(0);
    expect(logprobBackward({ logits: new Float32Array(0), targets: new Int32Array(0), vocab: 5 }).length).toBe(0);
  });
});
