import {
  fusedLinearLogprob,
  fusedLinearLogprobAsync,
  fusedLinearLogprobBackward,
  fusedLinearLogprobBackwardAsync,
  fusedLinearLogprobForwardBackward,
  fusedLinearLogprobForwardBackwardAsync,
  fusedLinearLogprobPlan,
  fusedLinearLogprobWorkspaceBytes,
  nativeInfo,
  setSimdLevel,
} from '../src/native';
import { spawnSync } from 'child_process';
import * as path from 'path';
import { Rng } from './helpers/random';
import { expectClose, finiteDiff, toF64 } from './helpers/compare';
import { FusedCase, gradRef, logprobRef, lossRef, makeCase } from './helpers/ref_fused_linear_logprob';

// Tolerances (relative error, with an absolute floor near zero):
// - logp, lse: 1e-5 with floor 1e-3 (float32 logits: |dz| ~ eps * sum_j |h_j W_kj| / tau; the online
//   logsumexp is accumulated in double across chunks). Entropy: 1e-5 with floor 1e-3 too — entropy is
//   accumulated as log s - E[z - m], a sum of two non-negative terms, so it keeps relative precision
//   even for peaked distributions.
// - gradients: 1e-4 relative to the largest element (floor 1% of max |grad|) on moderate logits, 1e-3
//   on peaked ones (|z| ~ 50). dh and dW are float32 sums over V resp. N terms that cancel (sum_k dz_k = 0
//   for the dlogp part), so their error is ~eps * sqrt(K) * max|term| relative to the largest element,
//   and the entropy term amplifies logit errors by |z_k - E[z]|. Measured: <= 1.5e-5 resp. 4e-4.
const FWD_TOL = 1e-5;
const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, x) => Math.max(m, Math.abs(x)), 0);
const expectGrad = (actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number) =>
  expectClose(actual, expected, tol, Math.max(1e-2 * maxAbs(expected), 1e-7));
const sameBits = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer).equals(Buffer.from(b.buffer));

interface Case extends FusedCase {
  fwdTol: number;
  gradTol: number;
}// Chunks are 256 columns and macro-blocks 256 rows; vocab ranges per thread are multiples of 16.
const CASES: Case[] = [
  { N: 1, d: 1, V: 1, tau: 1, ignored: 0, hScale: 1, fwdTol: FWD_TOL, gradTol: 1e-4 },
  { N: 1, d: 3, V: 1, tau: 0.9, ignored: 0, hScale: 1, fwdTol: FWD_TOL, gradTol: 1e-4 },
  { N: 1, d: 1, V: 5, tau: 1, ignored: 0, hScale: 1, fwdTol: FWD_TOL, gradTol: 1e-4 },
  { N: 2, d: 7, V: 17, tau: 0.7, ignored: 0, hScale: 1, fwdTol: FWD_TOL, gradTol: 1e-4 },
  { N: 9, d: 13, V: 300, tau: 1.3, ignored: 0.3, hScale: 1, fwdTol: FWD_TOL, gradTol: 1e-4 },
  { N: 300, d: 5, V: 40, tau: 1, ignored: 0.25, hScale: 1, fwdTol: FWD_TOL, gradTol: 1e-4 }, // two macro-blocks, gathers
  { N: 5, d: 16, V: 600, tau: 1, ignored: 0, hScale: 1, fwdTol: FWD_TOL, gradTol: 1e-4 }, // V not a multiple of the chunk
  // peaked, |z| ~ 50: here the float32 logits themselves are off by ~1e-5 absolute, which bounds the
  // relative error of a small entropy (dH = -sum p_k (z_k - E z) dz_k) and of the gradients
  { N: 6, d: 33, V: 1000, tau: 0.5, ignored: 0, hScale: 3, fwdTol: 5e-5, gradTol: 1e-3 },
];


describe.each(['portable', 'avx2', 'avx512'] as const)('fusedLinearLogprob (%s path)', (level) => {
  beforeAll(() => setSimdLevel(level));
  afterAll(() => setSimdLevel('avx512'));

  it.each(CASES)('forward and backward match float64 at N=$N d=$d V=$V tau=$tau', (c) => {
    const x = makeCase(c, c.N * 131 + c.V);
    const ref = logprobRef(x.h, x.W, x.targets, c.N, c.d, c.V, c.tau);
    const variants = [
      { impl: 'fused', split: 'rows' },
      { impl: 'fused', split: 'vocab' },
      { impl: 'reference' },
    ] as const;
    for (const v of variants) {
      const out = fusedLinearLogprob({ ...x, ...v });
      expectClose(out.logp, ref.logp, c.fwdTol);
      expectClose(out.entropy, ref.entropy, c.fwdTol);
      expectClose(out.lse, ref.lse, c.fwdTol);
      for (let i = 0; i < c.N; i++) {
        if (x.targets[i] < 0) expect([out.logp[i], out.entropy[i], out.lse[i]]).toEqual([0, 0, 0]);
      }
      const g = gradRef(x.h, x.W, x.targets, c.N, c.d, c.V, c.tau, x.dlogp, x.dentropy);
      const dh = new Float32Array(c.N * c.d).fill(Number.NaN); // overwritten, ignored rows included
      const { dW } = fusedLinearLogprobBackward({ ...x, lse: out.lse, entropy: out.entropy, dh, ...v });
      expectGrad(dh, g.dh, c.gradTol);
      expectGrad(dW, g.dW, c.gradTol);
      if (v.impl === 'reference') continue;
      // the combined entry point gives the same outputs
      const fb = fusedLinearLogprobForwardBackward({ ...x, split: v.split });
      expectClose(fb.logp, ref.logp, c.fwdTol);
      expectClose(fb.entropy, ref.entropy, c.fwdTol);
      expectClose(fb.lse, ref.lse, c.fwdTol);
      expectGrad(fb.dh, g.dh, c.gradTol);
      expectGrad(fb.dW, g.dW, c.gradTol);
    }
  });

  it.each(['rows', 'vocab'] as const)('backward (%s split) matches central finite differences of the float64 loss', (split) => {
    const c: Case = { N: 7, d: 6, V: 37, tau: 0.8, ignored: 0.3, hScale: 1, fwdTol: FWD_TOL, gradTol: 1e-4 };
    const x = makeCase(c, 77);
    const f = fusedLinearLogprob(x);
    const rng = new Rng(3);
    for (const [dlogp, dentropy] of [[x.dlogp, null], [null, x.dentropy], [x.dlogp, x.dentropy]] as const) {
      const { dh, dW } = fusedLinearLogprobBackward({
        ...x, lse: f.lse, entropy: f.entropy, dlogp: dlogp ?? undefined, dentropy: dentropy ?? undefined, split,
      });
      const h64 = toF64(x.h), W64 = toF64(x.W);
      const lossH = (hh: Float64Array) => lossRef(hh, W64, x.targets, c.N, c.d, c.V, c.tau, dlogp, dentropy);
      const lossW = (ww: Float64Array) => lossRef(h64, ww, x.targets, c.N, c.d, c.V, c.tau, dlogp, dentropy);
      const hi = Array.from({ length: 8 }, () => rng.int(0, c.N * c.d));
      const wi = Array.from({ length: 8 }, () => rng.int(0, c.V * c.d));
      const scaleH = maxAbs(dh), scaleW = maxAbs(dW);
      expectClose(hi.map((i) => dh[i]), hi.map((i) => finiteDiff(lossH, h64, i)), 1e-4, 1e-2 * scaleH);
      expectClose(wi.map((i) => dW[i]), wi.map((i) => finiteDiff(lossW, W64, i)), 1e-4, 1e-2 * scaleW);
      // ignored rows get exactly zero dh
      for (let i = 0; i < c.N; i++) {
        if (x.targets[i] < 0) expect(maxAbs(dh.subarray(i * c.d, (i + 1) * c.d))).toBe(0);
      }
    }
  });
});

describe.each(['rows', 'vocab'] as const)('fusedLinearLogprob gradients: accumulation and options (%s split)', (split) => {
  // N = 80: the vocab split's single-sweep forwardBackward uses blocks of 8 rows (combinedRows)
  const c: Case = { N: 80, d: 9, V: 70, tau: 1.1, ignored: 0.2, hScale: 1, fwdTol: FWD_TOL, gradTol: 1e-4 };
  const x = { ...makeCase(c, 11), split };
  const f = fusedLinearLogprob(x);
  const base = fusedLinearLogprobBackward({ ...x, lse: f.lse, entropy: f.entropy });

  it('dW always accumulates; dh accumulates only with accumulateDh (ignored rows then untouched)', () => {
    const dW = new Float32Array(c.V * c.d).fill(0.5);
    const dh = new Float32Array(c.N * c.d).fill(2);
    fusedLinearLogprobBackward({ ...x, lse: f.lse, entropy: f.entropy, dh, dW, accumulateDh: true });
    // relative to the accumulator's magnitude (0.5, 2): the addition may happen inside the GEMM
    expectClose(dW, Array.from(base.dW, (v) => v + 0.5), 1e-6, 0.5);
    expectClose(dh, Array.from(base.dh, (v) => v + 2), 1e-6, 2);
    for (let i = 0; i < c.N; i++) {
      if (x.targets[i] < 0) expect(Array.from(dh.subarray(i * c.d, (i + 1) * c.d))).toEqual(new Array(c.d).fill(2));
    }
    // a second micro-batch adds again
    fusedLinearLogprobBackward({ ...x, lse: f.lse, entropy: f.entropy, dW });
    expectClose(dW, Array.from(base.dW, (v) => 2 * v + 0.5), 1e-6, 0.5);
  });

  it('dentropy without entropy recomputes it and gives the same bits', () => {
    const again = fusedLinearLogprobBackward({ ...x, lse: f.lse });
    expect(sameBits(again.dh, base.dh)).toBe(true);
    expect(sameBits(again.dW, base.dW)).toBe(true);
  });

  it('no cotangent gives zero dh and leaves dW alone', () => {
    const dW = new Float32Array(c.V * c.d).fill(3);
    const dh = new Float32Array(c.N * c.d).fill(4);
    fusedLinearLogprobBackward({ ...x, dlogp: undefined, dentropy: undefined, lse: f.lse, dh, dW });
    expect(maxAbs(dh)).toBe(0);
    expect(dW.every((v) => v === 3)).toBe(true);
  });

  it('forwardBackward: accumulation, zero cotangent, and the same results as forward then backward', async () => {
    const dW = new Float32Array(c.V * c.d).fill(0.5);
    const dh = new Float32Array(c.N * c.d).fill(2);
    const fb = fusedLinearLogprobForwardBackward({ ...x, dh, dW, accumulateDh: true });
    for (const k of ['logp', 'entropy', 'lse'] as const) {
      if (split === 'rows') expect(sameBits(fb[k], f[k])).toBe(true); // same tiles, same arithmetic
      else expectClose(fb[k], f[k], 1e-6);
    }
    // relative to the accumulator's magnitude (0.5, 2): the addition may happen inside the GEMM
    expectClose(dW, Array.from(base.dW, (v) => v + 0.5), 1e-6, 0.5);
    expectClose(dh, Array.from(base.dh, (v) => v + 2), 1e-6, 2);
    for (let i = 0; i < c.N; i++) {
      if (x.targets[i] < 0) expect(Array.from(dh.subarray(i * c.d, (i + 1) * c.d))).toEqual(new Array(c.d).fill(2));
    }
    expect(fusedLinearLogprobPlan(x).combinedRows).toBe(split === 'rows' ? fusedLinearLogprobPlan(x).rows : 8);
    const plain = fusedLinearLogprobForwardBackward(x);
    if (split === 'rows') {
      expect(sameBits(plain.dh, base.dh)).toBe(true);
      expect(sameBits(plain.dW, base.dW)).toBe(true);
    } else {
      expectGrad(plain.dh, base.dh, 1e-5);
      expectGrad(plain.dW, base.dW, 1e-5);
    }
    // the rows with too few rows for the single sweep (N < 64) run forward then backward
    const few = {
      ...x, N: 40, h: x.h.subarray(0, 40 * c.d), targets: x.targets.subarray(0, 40),
      dlogp: x.dlogp.subarray(0, 40), dentropy: x.dentropy.subarray(0, 40),
    };
    if (split === 'vocab') expect(fusedLinearLogprobPlan(few).combinedRows).toBe(0);
    const fa = fusedLinearLogprob(few);
    const ga = fusedLinearLogprobBackward({ ...few, lse: fa.lse, entropy: fa.entropy });
    const fb2 = fusedLinearLogprobForwardBackward(few);
    expect(sameBits(fb2.dh, ga.dh)).toBe(true);
    expect(sameBits(fb2.dW, ga.dW)).toBe(true);
    expect(sameBits(fb2.logp, fa.logp)).toBe(true);
    const again = await fusedLinearLogprobForwardBackwardAsync(x);
    for (const k of ['logp', 'entropy', 'lse', 'dh', 'dW'] as const) expect(sameBits(again[k], plain[k])).toBe(true);
    const zero = fusedLinearLogprobForwardBackward({
      ...x, dlogp: undefined, dentropy: undefined, dh: new Float32Array(c.N * c.d).fill(4),
      dW: new Float32Array(c.V * c.d).fill(3),
    });
    expect(maxAbs(zero.dh)).toBe(0);
    expect(zero.dW.every((v) => v === 3)).toBe(true);
    expect(sameBits(zero.logp, plain.logp)).toBe(true);
  });

  it('N = 0 is a no-op', () => {
    const r = fusedLinearLogprob({ h: new Float32Array(0), W: x.W, targets: new Int32Array(0), N: 0, d: c.d, V: c.V });
    expect(r.logp.length).toBe(0);
    const g = fusedLinearLogprobBackward({ h: new Float32Array(0), W: x.W, targets: new Int32Array(0), lse: r.lse, N: 0, d: c.d, V: c.V });
    expect(maxAbs(g.dW)).toBe(0);
  });
});

describe.each(['rows', 'vocab'] as const)('fusedLinearLogprob determinism, threads and async (%s split)', (split) => {
  const c: Case = { N: 270, d: 12, V: 530, tau: 0.9, ignored: 0.1, hScale: 1, fwdTol: FWD_TOL, gradTol: 1e-4 };
  const x = { ...makeCase(c, 21), split };

  it('repeated calls and async give identical bits', async () => {
    const a = fusedLinearLogprob(x);
    const b = fusedLinearLogprob(x);
    const p = await fusedLinearLogprobAsync(x);
    for (const k of ['logp', 'entropy', 'lse'] as const) {
      expect(sameBits(a[k], b[k])).toBe(true);
      expect(sameBits(a[k], p[k])).toBe(true);
    }
    const g1 = fusedLinearLogprobBackward({ ...x, lse: a.lse, entropy: a.entropy });
    const g2 = fusedLinearLogprobBackward({ ...x, lse: a.lse, entropy: a.entropy });
    const g3 = await fusedLinearLogprobBackwardAsync({ ...x, lse: a.lse, entropy: a.entropy });
    for (const k of ['dh', 'dW'] as const) {
      expect(sameBits(g1[k], g2[k])).toBe(true);
      expect(sameBits(g1[k], g3[k])).toBe(true);
    }
  });

});

describe('fusedLinearLogprob thread counts', () => {
  const c: Case = { N: 270, d: 12, V: 530, tau: 0.9, ignored: 0.1, hScale: 1, fwdTol: FWD_TOL, gradTol: 1e-4 };
  const x = makeCase(c, 21);
  type Out = Record<'logp' | 'entropy' | 'dh' | 'dW', number[]>;
  // The pool size is set per process (MEDGYM_NUM_THREADS); one child runs both splits.
  it.each([1, 3])('with %i threads both splits agree with float64 and repeat exactly', (threads) => {
    const run = () => {
      const res = spawnSync(
        process.execPath,
        [require.resolve('tsx/cli'), path.join(__dirname, 'helpers', 'fused_threads_child.ts'), JSON.stringify({ ...c, seed: 21 })],
        { encoding: 'utf8', env: { ...process.env, MEDGYM_NUM_THREADS: String(threads) } },
      );
      if (res.status !== 0) throw new Error(`child failed: ${res.stderr}`);
      return JSON.parse(res.stdout) as { threads: number; rows: Out; vocab: Out };
    };
    const out = run();
    expect(out.threads).toBe(threads);
    const ref = logprobRef(x.h, x.W, x.targets, c.N, c.d, c.V, c.tau);
    const g = gradRef(x.h, x.W, x.targets, c.N, c.d, c.V, c.tau, x.dlogp, x.dentropy);
    for (const o of [out.rows, out.vocab]) {
      expectClose(o.logp, ref.logp, FWD_TOL);
      expectClose(o.entropy, ref.entropy, FWD_TOL);
      expectGrad(o.dh, g.dh, c.gradTol);
      expectGrad(o.dW, g.dW, c.gradTol);
    }
    expect(run()).toEqual(out);
  });
});

describe('fusedLinearLogprobPlan: split selection', () => {
  it('picks the rows split at the policy vocabulary V = 268 (d = 128..768) and the vocab split at large V', () => {
    for (const d of [128, 384, 768]) {
      for (const threads of [1, 2, 4, 8]) {
        const p = fusedLinearLogprobPlan({ N: 2048, d, V: 268, threads });
        expect(p.split).toBe('rows');
        expect(p.chunk).toBe(268);
        expect(p.threads).toBe(threads);
        expect(p.rows % 8).toBe(0);
        expect(p.rows * 272 * 4).toBeLessThanOrEqual(256 * 1024); // the rows x V tile stays in L2
      }
    }
    for (const V of [8192, 32768]) {
      for (const threads of [1, 2, 16]) {
        const p = fusedLinearLogprobPlan({ N: 2048, d: 384, V, threads });
        expect(p.split).toBe('vocab');
        expect(p.rows).toBe(256);
      }
    }
    // the dW partials would be too large: 4 T V d > 16 MiB
    expect(fusedLinearLogprobPlan({ N: 2048, d: 768, V: 2048, threads: 4 }).split).toBe('vocab');
    expect(fusedLinearLogprobPlan({ N: 2048, d: 768, V: 2048, threads: 2 }).split).toBe('rows');
    // tiny N: fewer threads (at least 16 rows each), and blocks no larger than a thread's share
    const tiny = fusedLinearLogprobPlan({ N: 40, d: 64, V: 268, threads: 8 });
    expect([tiny.split, tiny.threads, tiny.rows]).toEqual(['rows', 2, 20]);
    // forced splits
    expect(fusedLinearLogprobPlan({ N: 2048, d: 384, V: 268, threads: 2, split: 'vocab' }).split).toBe('vocab');
    expect(fusedLinearLogprobPlan({ N: 2048, d: 384, V: 32768, threads: 2, split: 'rows' }).split).toBe('rows');
    // the calls use the plan of the pool size
    expect(fusedLinearLogprobPlan({ N: 10, d: 4, V: 268 }).threads).toBe(1);
    expect(fusedLinearLogprobPlan({ N: 4096, d: 4, V: 268 }).threads).toBe(nativeInfo().threads);
  });
});

describe('fusedLinearLogprobWorkspaceBytes', () => {
  it('follows the documented formula and stays far below the unfused N x V buffers', () => {
    const [N, d, V, T] = [2048, 384, 32768, 2];
    const R = 256, C = 256;
    const bwd = 4 * R * d + 4 * T * R * C + 4 * T * R * d + 28 * R + T;
    const fwd = 4 * R * d + 4 * T * R * C + 24 * T * R + 12 * R;
    expect(fusedLinearLogprobWorkspaceBytes({ N, d, V, threads: T, pass: 'backward' })).toBe(bwd);
    expect(fusedLinearLogprobWorkspaceBytes({ N, d, V, threads: T, pass: 'forward' })).toBe(fwd);
    // single sweep: the backward's terms with the block's full logits [R x V] instead of the T tiles
    expect(fusedLinearLogprobWorkspaceBytes({ N, d, V, threads: T, pass: 'forwardBackward' })).toBe(
      4 * R * d + 4 * R * V + 24 * T * R + 4 * R + 4 * T * R * d + 28 * R + T,
    );
    // N < 64: forward then backward
    expect(fusedLinearLogprobWorkspaceBytes({ N: 40, d, V, threads: T, pass: 'forwardBackward' })).toBe(
      8 * 40 + Math.max(
        fusedLinearLogprobWorkspaceBytes({ N: 40, d, V, threads: T, pass: 'forward' }),
        fusedLinearLogprobWorkspaceBytes({ N: 40, d, V, threads: T, pass: 'backward' }),
      ),
    );
    for (const threads of [1, 2, 4, 8, 16]) {
      for (const v of [8192, 32768]) {
        for (const n of [N, 512]) {
          for (const pass of ['backward', 'forwardBackward'] as const) {
            const ws = fusedLinearLogprobWorkspaceBytes({ N: n, d, V: v, threads, pass, recomputeEntropy: true });
            if (n === N || pass === 'forwardBackward') expect(ws).toBeLessThanOrEqual((8 * n * v) / 8);
          }
        }
      }
    }
    // rows split at the policy vocabulary: L = V rounded up to 16, R = rows per block
    {
      const [v, L] = [268, 272];
      const p = fusedLinearLogprobPlan({ N, d, V: v, threads: T });
      const Rr = p.rows;
      expect(fusedLinearLogprobWorkspaceBytes({ N, d, V: v, threads: T, pass: 'forward' })).toBe(
        4 * N + T * (4 * Rr * d + 4 * Rr * L),
      );
      const rowsBwd = 4 * N + T * (4 * Rr * d + 4 * Rr * L) + 4 * (T - 1) * v * d + T;
      for (const recomputeEntropy of [false, true]) {
        expect(fusedLinearLogprobWorkspaceBytes({ N, d, V: v, threads: T, recomputeEntropy })).toBe(rowsBwd);
      }
      expect(fusedLinearLogprobWorkspaceBytes({ N, d, V: v, threads: T, pass: 'forwardBackward' })).toBe(rowsBwd);
      expect(rowsBwd).toBeLessThanOrEqual(16 * 2 ** 20 + 4 * N + T * (4 * 256 * d + 256 * 1024));
    }
    expect(fusedLinearLogprobWorkspaceBytes({ N: 0, d, V })).toBe(0);
    // small N: macro-block shrinks to N
    expect(fusedLinearLogprobWorkspaceBytes({ N: 1, d: 4, V: 20, threads: 1, pass: 'forward', split: 'vocab' })).toBe(
      4 * 4 + 4 * 32 + 24 + 12,
    );
  });
});
