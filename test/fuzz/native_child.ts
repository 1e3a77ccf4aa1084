// Child process of test/fuzz/native.test.ts: calls every export of the native addon with hostile
// options (valid options of a small size, then one or two fields mutated) and tallies the outcomes.
// It runs in its own process so that a crash (SIGSEGV/abort) is seen by the parent instead of
// killing jest; before each call it writes the case to FUZZ_LOG, so the parent can say which case
// crashed. Prints one JSON summary line at the end.
//
// Environment: FUZZ_SEED, FUZZ_CASES (per export), FUZZ_LOG (the case log). To replay or look past a
// crash: FUZZ_ONLY (a regex of export names), FUZZ_CASE (one case number), FUZZ_SKIP ("gemm#3,..."),
// FUZZ_SKIP_KINDS (a regex of mutation kinds), e.g.
//   FUZZ_ONLY=gemmAsync FUZZ_CASE=17 FUZZ_CASES=60 node --expose-gc -r tsx/cjs test/fuzz/native_child.ts
// Each case has its own seed (seed, export name, case number), so a case replays alone.
import * as fs from 'fs';
import * as util from 'util';
import { loadNative } from '../../src/native/loader';
import { Rng } from '../helpers/random';

type Opts = Record<string, unknown>;
type AnyFn = (...args: unknown[]) => unknown;
type TypedArray = Float32Array | Int32Array | Uint8Array;

const SEED = Number(process.env.FUZZ_SEED ?? 17);
const CASES = Number(process.env.FUZZ_CASES ?? 40);
const ONLY = process.env.FUZZ_ONLY ? new RegExp(`^(${process.env.FUZZ_ONLY})$`) : undefined;
const ONLY_CASE = process.env.FUZZ_CASE ? Number(process.env.FUZZ_CASE) : undefined;
/** Cases to skip ("name#i,..."), to look past a crash. */
const SKIP = new Set((process.env.FUZZ_SKIP ?? '').split(',').filter(Boolean));
/** Mutation kinds to skip (a regex), to look past a class of crash. */
const SKIP_KINDS = process.env.FUZZ_SKIP_KINDS ? new RegExp(process.env.FUZZ_SKIP_KINDS) : undefined;
const logFd = process.env.FUZZ_LOG ? fs.openSync(process.env.FUZZ_LOG, 'w') : undefined;
const log = (line: string): void => {
  if (logFd !== undefined) fs.writeSync(logFd, line + '\n');
};

const addon = loadNative() as unknown as Record<string, AnyFn>;
const gc = (globalThis as { gc?: () => void }).gc ?? ((): void => undefined);

/** Thrown by the fuzzer's own getters/traps: such an error may come back as it is. */
class FuzzThrow extends Error {
  constructor() {
    super('thrown by a hostile getter of the fuzzer');
    this.name = 'FuzzThrow';
  }
}

// ----- small valid inputs ------------------------------------------------------------------------

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(0, xs.length)];
const f32 = (rng: Rng, n: number, scale = 1): Float32Array => rng.f32(n, scale);
const pos = (rng: Rng, n: number): Float32Array => Float32Array.from({ length: n }, () => rng.uniform(0.5, 2));
const targets = (rng: Rng, n: number, V: number): Int32Array => Int32Array.from({ length: n }, () => (rng.next() < 0.2 ? -1 : rng.int(0, V)));
const bool = (rng: Rng): boolean => rng.next() < 0.5;

// The policy: one tiny model per role (vocab 268 = 256 bytes + specials, <|image|> = 259).
const IMAGE_ID = 259;
const CFG = { vocabSize: 268, dModel: 16, nLayer: 1, nHead: 2, maxSeq: 64, patch: 8, imageSize: 16, channels: 3, imageId: IMAGE_ID };
const IMAGE_BYTES = 16 * 16 * 3;
const newModel = (seed = 1): unknown => addon.policyCreate({ ...CFG, seed, maxParams: 1e6 });

/** Ragged batch: 1-3 sequences that all start with [<|bos|>, 'A'] (a shareable prefix), some with an image. */
function batch(rng: Rng): { tokens: Int32Array; lengths: Int32Array; images: Uint8Array; nImages: number } {
  const seqs: number[][] = [];
  let nImages = 0;
  for (let s = rng.int(1, 4); s > 0; s--) {
    const t = [256, 65];
    for (let k = rng.int(0, 6); k > 0; k--) {
      if (rng.next() < 0.15) t.push(IMAGE_ID), nImages++;
      else t.push(rng.int(32, 127));
    }
    seqs.push(t);
  }
  const images = Uint8Array.from({ length: nImages * IMAGE_BYTES }, () => rng.int(0, 256));
  return { tokens: Int32Array.from(seqs.flat()), lengths: Int32Array.from(seqs.map((s) => s.length)), images, nImages };
}

const keys = (rng: Rng, n: number): Opts => ({
  seeds: Array.from({ length: n }, () => rng.int(0, 1000)),
  steps: Array.from({ length: n }, () => rng.int(0, 10)),
  promptIndices: Array.from({ length: n }, (_, i) => i),
  sampleIndices: Array.from({ length: n }, () => 0),
});

/** Extreme weights: the policy must run (NaN/Inf results are fine) without crashing. */
function poison(model: unknown): void {
  const total = (addon.policyLayout({ model }) as { size: number }[]).reduce((a, t) => a + t.size, 0);
  const vals = [3e38, -3e38, 1e-45, 0, 1e20, -1e20, 65504];
  addon.policyWrite({ model, which: 'params', data: Float32Array.from({ length: total }, (_, i) => vals[(i * 7919) % vals.length]) });
}

const modelA = newModel(1); // policy ops: written, stepped, forward/backward
const modelP = newModel(2); // poisoned weights
poison(modelP);
const modelB = newModel(3); // sessions only (its weights never change, so its sessions stay fresh)
const disposedModel = newModel(4);
addon.policyDispose({ model: disposedModel });
const disposedSession = addon.sessionCreate({ model: modelB });
addon.sessionDispose({ session: disposedSession });
const SPECIALS = ['<|bos|>', '<|eos|>', '<|pad|>', '<|image|>', '<answer>', '</answer>'];
let session: unknown = addon.sessionCreate({ model: modelB, specials: SPECIALS });
let sessionUses = 0;

/** Per case: shared handles, or fresh ones (a case that disposes them). */
interface Ctx {
  fresh: boolean;
  model(rng: Rng): unknown;
  session(): unknown;
  /** A new sequence of the case's session. */
  seq(rng: Rng): number;
}
function makeCtx(fresh: boolean): Ctx {
  let s: unknown;
  return {
    fresh,
    model: (rng) => (fresh ? newModel(5) : rng.next() < 0.3 ? modelP : modelA),
    session() {
      if (s) return s;
      if (fresh) return (s = addon.sessionCreate({ model: newModel(6) }));
      if (++sessionUses % 40 === 0) {
        addon.sessionDispose({ session });
        session = addon.sessionCreate({ model: modelB, specials: SPECIALS });
      }
      return (s = session);
    },
    seq(rng) {
      const b = batch(rng);
      return (addon.sessionAdd({ session: this.session(), ...b, ...keys(rng, b.lengths.length) }) as number[])[0];
    },
  };
}

// ----- the valid options of every export ----------------------------------------------------------

interface Spec {
  /** Valid options (small sizes), required fields and some optional ones. */
  base: (rng: Rng, ctx: Ctx) => Opts;
  /** Valid values for the optional fields base() may leave out, consistent with `o`. */
  optional?: (rng: Rng, o: Opts) => Opts;
  /** Hostile numbers for a field instead of the generic ones (a valid huge value would be too costly). */
  numbers?: Record<string, number[]>;
  /** Takes no options. */
  noOptions?: true;
  /** Restores process-wide state a call may change. */
  restore?: () => void;
}

const gemm: Spec = {
  base: (rng) => {
    const [M, N, K] = [rng.int(1, 5), rng.int(1, 5), rng.int(1, 5)];
    return { M, N, K, A: f32(rng, M * K), B: f32(rng, K * N), C: f32(rng, M * N) };
  },
  optional: (rng) => ({ transA: bool(rng), transB: bool(rng), alpha: rng.normal(), beta: rng.normal() }),
};
const softmax: Spec = {
  base: (rng) => {
    const [N, C] = [rng.int(1, 4), rng.int(1, 6)];
    return { N, C, input: f32(rng, N * C), out: new Float32Array(N * C) };
  },
  optional: (rng) => ({ scale: rng.uniform(0.1, 2), reference: bool(rng) }),
};
const softmaxBackward: Spec = {
  base: (rng) => {
    const [N, C] = [rng.int(1, 4), rng.int(1, 6)];
    return { N, C, probs: pos(rng, N * C), dout: f32(rng, N * C), dinput: new Float32Array(N * C) };
  },
  optional: (rng) => ({ scale: rng.uniform(0.1, 2), accumulate: bool(rng), reference: bool(rng) }),
};
const layerNorm: Spec = {
  base: (rng) => {
    const [N, C] = [rng.int(1, 4), rng.int(1, 6)];
    return { N, C, input: f32(rng, N * C), weight: f32(rng, C), bias: f32(rng, C), out: new Float32Array(N * C), mean: new Float32Array(N), rstd: new Float32Array(N) };
  },
  optional: (rng) => ({ eps: 1e-5, reference: bool(rng) }),
};
const layerNormBackward: Spec = {
  base: (rng) => {
    const [N, C] = [rng.int(1, 4), rng.int(1, 6)];
    return {
      N, C, dout: f32(rng, N * C), input: f32(rng, N * C), weight: f32(rng, C), mean: f32(rng, N), rstd: pos(rng, N),
      dinput: new Float32Array(N * C), dweight: new Float32Array(C), dbias: new Float32Array(C),
    };
  },
  optional: (rng) => ({ accumulate: bool(rng), reference: bool(rng) }),
};
const gelu: Spec = {
  base: (rng) => {
    const n = rng.int(1, 10);
    return { input: f32(rng, n), out: new Float32Array(n) };
  },
  optional: (rng) => ({ reference: bool(rng) }),
};
const geluBackward: Spec = {
  base: (rng) => {
    const n = rng.int(1, 10);
    return { input: f32(rng, n), dout: f32(rng, n), dinput: new Float32Array(n) };
  },
  optional: (rng) => ({ accumulate: bool(rng), reference: bool(rng) }),
};
const attnDims = (rng: Rng): { B: number; T: number; C: number; H: number } => {
  const H = rng.int(1, 3);
  return { B: rng.int(1, 3), T: rng.int(1, 4), C: H * rng.int(1, 3), H };
};
const attention: Spec = {
  base: (rng) => {
    const { B, T, C, H } = attnDims(rng);
    return { B, T, C, H, qkv: f32(rng, B * T * 3 * C), out: new Float32Array(B * T * C), lse: new Float32Array(B * H * T) };
  },
  optional: (rng, o) => ({ mask: Int32Array.from({ length: (o.B as number) * (o.T as number) }, () => (rng.next() < 0.8 ? 1 : 0)), reference: bool(rng) }),
};
const attentionBackward: Spec = {
  base: (rng) => {
    const { B, T, C, H } = attnDims(rng);
    return {
      B, T, C, H, dout: f32(rng, B * T * C), qkv: f32(rng, B * T * 3 * C), out: f32(rng, B * T * C), lse: f32(rng, B * H * T),
      dqkv: new Float32Array(B * T * 3 * C),
    };
  },
  optional: (rng, o) => ({ mask: Int32Array.from({ length: (o.B as number) * (o.T as number) }, () => 1), accumulate: bool(rng), reference: bool(rng) }),
};
const kv = (rng: Rng): Opts => {
  const { B, C, H } = attnDims(rng);
  const Tq = rng.int(1, 3), Tk = Tq + rng.int(0, 3), S = Tk + rng.int(0, 2);
  return { B, Tq, Tk, capacity: S, C, H, q: f32(rng, B * Tq * C), k: f32(rng, B * S * C), v: f32(rng, B * S * C), out: new Float32Array(B * Tq * C) };
};
const kvOptional = (rng: Rng, o: Opts): Opts => ({ lse: new Float32Array((o.B as number) * (o.H as number) * (o.Tq as number)), reference: bool(rng) });
const attentionCached: Spec = {
  base: kv,
  optional: (rng, o) => ({ ...kvOptional(rng, o), mask: Int32Array.from({ length: (o.B as number) * (o.Tk as number) }, () => 1) }),
};
const attentionDecode: Spec = { base: kv, optional: kvOptional };
const lpDims = (rng: Rng): { V: number; N: number } => ({ V: rng.int(1, 7), N: rng.int(0, 4) });
const logprob: Spec = {
  base: (rng) => {
    const { V, N } = lpDims(rng);
    return { vocab: V, targets: targets(rng, N, V), logits: f32(rng, N * V), logp: new Float32Array(N) };
  },
  optional: (rng, o) => {
    const N = (o.targets as Int32Array).length;
    return { temperature: rng.uniform(0.5, 2), entropy: new Float32Array(N), lse: new Float32Array(N), reference: bool(rng) };
  },
};
const logprobBackward: Spec = {
  base: (rng) => {
    const { V, N } = lpDims(rng);
    return { vocab: V, targets: targets(rng, N, V), logits: f32(rng, N * V), dlogp: f32(rng, N), dlogits: new Float32Array(N * V) };
  },
  optional: (rng, o) => {
    const N = (o.targets as Int32Array).length;
    return { temperature: rng.uniform(0.5, 2), lse: f32(rng, N), dentropy: f32(rng, N), accumulate: bool(rng), reference: bool(rng) };
  },
};
const logSoftmax: Spec = {
  base: (rng) => {
    const { V, N } = lpDims(rng);
    return { vocab: V, logits: f32(rng, N * V), out: new Float32Array(N * V) };
  },
  optional: (rng) => ({ temperature: rng.uniform(0.5, 2), reference: bool(rng) }),
};
const crossEntropy: Spec = {
  base: (rng) => {
    const { V, N } = lpDims(rng);
    return { vocab: V, targets: targets(rng, N, V), logits: f32(rng, N * V) };
  },
  optional: (rng, o) => {
    const N = (o.targets as Int32Array).length, V = o.vocab as number;
    return {
      temperature: rng.uniform(0.5, 2), reduction: pick(rng, ['mean', 'sum']), lse: new Float32Array(N), dlogits: new Float32Array(N * V),
      dloss: rng.normal(), accumulate: bool(rng), reference: bool(rng),
    };
  },
};
const crossEntropyBackward: Spec = {
  base: (rng) => {
    const { V, N } = lpDims(rng);
    return { vocab: V, targets: targets(rng, N, V), logits: f32(rng, N * V), dlogits: new Float32Array(N * V) };
  },
  optional: (rng, o) => ({
    temperature: rng.uniform(0.5, 2), reduction: pick(rng, ['mean', 'sum']), lse: f32(rng, (o.targets as Int32Array).length),
    dloss: rng.normal(), accumulate: bool(rng), reference: bool(rng),
  }),
};
const grpoAdvantages: Spec = {
  base: (rng) => {
    const B = rng.int(0, 6);
    return { rewards: f32(rng, B), groups: Int32Array.from({ length: B }, () => rng.int(-3, 3)), advantages: new Float32Array(B) };
  },
  optional: (rng) => ({ scale: pick(rng, ['std', 'none']), reference: bool(rng) }),
};
const grpoLoss: Spec = {
  base: (rng) => {
    const B = rng.int(1, 4), T = rng.int(1, 5), BT = B * T;
    const o: Opts = {
      batch: B, seqLen: T, logp: f32(rng, BT, 0.5), oldLogp: f32(rng, BT, 0.5),
      mask: Float32Array.from({ length: BT }, () => (rng.next() < 0.7 ? 1 : 0)), dlogp: new Float32Array(BT),
    };
    if (bool(rng)) Object.assign(o, { rewards: f32(rng, B), groups: Int32Array.from({ length: B }, () => rng.int(0, 2)), advantagesOut: new Float32Array(B) });
    else o.advantages = f32(rng, B);
    return o;
  },
  optional: (rng, o) => {
    const BT = (o.batch as number) * (o.seqLen as number);
    return {
      refLogp: f32(rng, BT, 0.5), entropy: pos(rng, BT), epsLow: 0.2, epsHigh: 0.28, dualClip: 3, beta: 0.04, kl: pick(rng, ['k1', 'k2', 'k3']),
      lossAgg: pick(rng, ['token-mean', 'seq-mean-token-mean', 'seq-mean-token-sum', 'seq-mean-token-sum-norm']), tNorm: 4, reference: bool(rng),
      ...(o.rewards ? { scale: pick(rng, ['std', 'none']) } : {}),
    };
  },
};
const adamw: Spec = {
  base: (rng) => {
    const n = rng.int(1, 8);
    return { param: f32(rng, n), grad: f32(rng, n), m: f32(rng, n, 0.1), v: pos(rng, n), lr: 1e-3, step: rng.int(1, 100) };
  },
  optional: (rng) => ({ beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, reference: bool(rng) }),
};
const grads = (rng: Rng): Float32Array[] => Array.from({ length: rng.int(1, 4) }, () => f32(rng, rng.int(1, 6)));
const gradNorm: Spec = { base: (rng) => ({ grads: grads(rng) }), optional: (rng) => ({ reference: bool(rng) }) };
const gradClip: Spec = { base: (rng) => ({ grads: grads(rng), maxNorm: rng.uniform(0.1, 3) }), optional: (rng) => ({ reference: bool(rng) }) };
const fusedDims = (rng: Rng): Opts => {
  const N = rng.int(0, 4), d = rng.int(1, 5), V = rng.int(1, 7);
  return { N, d, V, h: f32(rng, N * d), W: f32(rng, V * d), targets: targets(rng, N, V) };
};
const fusedOut = (o: Opts): Opts => {
  const N = o.N as number;
  return { logp: new Float32Array(N), entropy: new Float32Array(N), lse: new Float32Array(N) };
};
const fusedLinearLogprob: Spec = {
  base: fusedDims,
  optional: (rng, o) => ({ ...fusedOut(o), temperature: rng.uniform(0.5, 2), impl: pick(rng, ['fused', 'reference']), split: pick(rng, ['auto', 'rows', 'vocab']) }),
};
const fusedLinearLogprobBackward: Spec = {
  base: (rng) => {
    const o = fusedDims(rng);
    const N = o.N as number, Nd = N * (o.d as number), Vd = (o.V as number) * (o.d as number);
    return { ...o, lse: f32(rng, N), dlogp: f32(rng, N), dh: new Float32Array(Nd), dW: new Float32Array(Vd) };
  },
  optional: (rng, o) => ({
    entropy: pos(rng, o.N as number), dentropy: f32(rng, o.N as number), temperature: rng.uniform(0.5, 2), accumulateDh: bool(rng),
    impl: pick(rng, ['fused', 'reference']), split: pick(rng, ['auto', 'rows', 'vocab']),
  }),
};
const fusedLinearLogprobForwardBackward: Spec = {
  base: (rng) => {
    const o = fusedDims(rng);
    return { ...o, dlogp: f32(rng, o.N as number), dh: new Float32Array((o.N as number) * (o.d as number)), dW: new Float32Array((o.V as number) * (o.d as number)) };
  },
  optional: (rng, o) => ({
    ...fusedOut(o), dentropy: f32(rng, o.N as number), temperature: rng.uniform(0.5, 2), accumulateDh: bool(rng), split: pick(rng, ['auto', 'rows', 'vocab']),
  }),
};
const fusedPlanDims = (rng: Rng): Opts => ({ N: rng.int(0, 5000), d: rng.int(1, 512), V: rng.int(1, 70000) });
const fusedLinearLogprobWorkspaceBytes: Spec = {
  base: fusedPlanDims,
  optional: (rng) => ({ threads: rng.int(1, 64), pass: pick(rng, ['forward', 'backward', 'forwardBackward']), recomputeEntropy: bool(rng), split: pick(rng, ['auto', 'rows', 'vocab']) }),
};
const fusedLinearLogprobPlan: Spec = {
  base: fusedPlanDims,
  optional: (rng) => ({ threads: rng.int(1, 64), split: pick(rng, ['auto', 'rows', 'vocab']) }),
};

// bf16-weight GEMM: W as Uint16Array (the high halves of float32 values).
const gemmBf16: Spec = {
  base: (rng) => {
    const [M, N, K] = [rng.int(1, 5), rng.int(1, 5), rng.int(1, 5)];
    const W = Uint16Array.from(f32(rng, N * K), (x) => new Uint32Array(Float32Array.of(x).buffer)[0] >>> 16);
    return { M, N, K, X: f32(rng, M * K), W, Y: f32(rng, M * N) };
  },
  optional: (rng, o) => ({ bias: f32(rng, o.N as number), beta: rng.normal(), mode: pick(rng, ['exact', 'bf16dot', 'packed']) }),
};

// Process-wide settings: each case restores them (a fuzzed thread count must not slow the rest down).
const THREADS = (addon.info() as { threads: number }).threads;
const SIMD = (addon.info() as { simd: string }).simd.startsWith('avx512') ? 'avx512' : (addon.info() as { simd: string }).simd.startsWith('avx2') ? 'avx2' : 'portable';
const runtime: Record<string, Spec> = {
  info: { base: () => ({}), noOptions: true },
  policyCudaProbe: { base: () => ({}), noOptions: true },
  setNumThreads: {
    base: (rng) => ({ threads: rng.int(1, 3) }),
    numbers: { threads: [NaN, Infinity, -1, 0.5, 1.5, 1025, 2 ** 31, 2 ** 53, 1e308, -0, 0, 2] },
    restore: () => void addon.setNumThreads({ threads: THREADS }),
  },
  setSimdLevel: { base: (rng) => ({ level: pick(rng, ['portable', 'avx2', 'avx512']) }), restore: () => void addon.setSimdLevel({ level: SIMD }) },
};

// ----- policy and sessions ------------------------------------------------------------------------

const cfgNumbers = { maxParams: [0, -1, 0.5, NaN, Infinity, 1e308, 2 ** 53 + 2, 1, 100] };
const policy: Record<string, Spec> = {
  policyCreate: {
    base: () => ({ ...CFG, maxParams: 1e6 }),
    optional: (rng) => ({ seed: rng.int(0, 1000), init: bool(rng), device: 'cpu', dtype: 'fp32' }),
    numbers: cfgNumbers,
  },
  policyConfigLayout: { base: () => ({ ...CFG, maxParams: 1e6 }), numbers: cfgNumbers },
  policyLayout: { base: (rng, ctx) => ({ model: ctx.model(rng) }) },
  policyDevice: { base: (rng, ctx) => ({ model: ctx.model(rng) }) },
  policyGetStep: { base: (rng, ctx) => ({ model: ctx.model(rng) }) },
  policySetStep: { base: (rng, ctx) => ({ model: ctx.model(rng), step: rng.int(0, 100) }) },
  policyDispose: { base: () => ({ model: newModel(7) }) },
  policyRead: {
    base: (rng, ctx) => ({ model: ctx.model(rng), which: pick(rng, ['params', 'grads']) }),
    optional: (rng) => ({ offset: rng.int(0, 10), size: rng.int(0, 10) }),
  },
  policyWrite: {
    base: (rng, ctx) => ({ model: ctx.model(rng), which: pick(rng, ['params', 'grads', 'm', 'v']), data: f32(rng, rng.int(0, 9), 0.02) }),
    optional: (rng) => ({ offset: rng.int(0, 10) }),
  },
  policyForward: {
    base: (rng, ctx) => ({ model: ctx.model(rng), ...batch(rng) }),
    optional: (rng, o) => {
      const n = (o.lengths as Int32Array).length;
      return {
        mask: Int32Array.from({ length: (o.tokens as Int32Array).length }, () => 1), temperature: rng.uniform(0.5, 2), entropy: bool(rng), requireGrad: bool(rng),
        ...(n > 1 ? { prefixGroup: new Int32Array(n), prefixLength: Int32Array.from([2]) } : { prefixGroup: Int32Array.from([-1]), prefixLength: new Int32Array(0) }),
      };
    },
  },
  policyBackward: {
    base: (rng, ctx) => {
      const model = ctx.model(rng);
      const b = batch(rng);
      addon.policyForward({ model, ...b, requireGrad: true });
      return { model, total: b.tokens.length, dlogp: f32(rng, b.tokens.length, 0.1) };
    },
    optional: (rng, o) => ({ dentropy: f32(rng, o.total as number, 0.1) }),
  },
  policyCrossEntropy: {
    base: (rng, ctx) => ({ model: ctx.model(rng), ...batch(rng) }),
    optional: (rng, o) => ({ mask: Int32Array.from({ length: (o.tokens as Int32Array).length }, () => rng.int(0, 2)), reduction: pick(rng, ['mean', 'sum']), scale: rng.uniform(0.1, 2) }),
  },
  policyStep: {
    base: (rng, ctx) => ({ model: ctx.model(rng) }),
    optional: () => ({ lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1, zeroGrad: true }),
  },
  policyZeroGrad: { base: (rng, ctx) => ({ model: ctx.model(rng) }) },
  sessionCreate: {
    base: () => ({ model: modelB }),
    optional: (rng) => ({ kvCache: bool(rng), seed: rng.int(0, 100), specials: SPECIALS }),
  },
  sessionAdd: {
    base: (rng, ctx) => {
      const b = batch(rng);
      return { session: ctx.session(), ...b, ...keys(rng, b.lengths.length) };
    },
    optional: (rng, o) => ({ counters: Array.from({ length: (o.lengths as Int32Array).length }, () => rng.int(0, 1000)) }),
  },
  sessionAppend: {
    base: (rng, ctx) => {
      const s = ctx.session(), id = ctx.seq(rng);
      const b = batch(rng);
      const n = b.lengths.length;
      // One segment per id: append the whole batch to one sequence as its first segment, or to n sequences.
      const ids = n === 1 ? [id] : [id, ...Array.from({ length: n - 1 }, () => ctx.seq(rng))];
      return { session: s, ...b, ids: Int32Array.from(ids) };
    },
  },
  sessionFork: { base: (rng, ctx) => ({ session: ctx.session(), id: ctx.seq(rng), ...keys(rng, rng.int(1, 3)) }) },
  sessionGenerate: {
    base: (rng, ctx) => ({ session: ctx.session(), ids: Int32Array.from([ctx.seq(rng)]), maxNewTokens: rng.int(0, 4) }),
    optional: (rng) => ({
      temperature: pick(rng, [0, 0.7, 1]), topP: pick(rng, [0.5, 1]), stopTokens: Int32Array.from([257]), stopStrings: ['</answer>', 'x'],
      bannedTokens: Int32Array.from([0, 1, 2]),
    }),
  },
  sessionTokens: { base: (rng, ctx) => ({ session: ctx.session(), ids: Int32Array.from([ctx.seq(rng)]) }) },
  sessionRelease: { base: (rng, ctx) => ({ session: ctx.session(), ids: Int32Array.from([ctx.seq(rng)]) }) },
  sessionDispose: { base: () => ({ session: addon.sessionCreate({ model: modelB }) }) },
};

// ----- qwen (native/model/qwen) -------------------------------------------------------------------

// A tiny Qwen2.5-VL-shaped config (GQA 2:1, window attention) whose image token is id 60.
const QCFG = {
  family: 'qwen2_5_vl', vocabSize: 64, hidden: 16, intermediate: 32, layers: 1, heads: 2, kvHeads: 1, headDim: 8, rmsEps: 1e-6, ropeTheta: 10000,
  mropeT: 1, mropeH: 1, mropeW: 2, tieEmbeddings: true, visionDepth: 2, visionDim: 8, visionHeads: 2, visionMlp: 16, inChannels: 3, patch: 2,
  merge: 2, temporalPatch: 2, outHidden: 16, windowSize: 4, fullAttBlocks: Int32Array.from([1]), imageToken: 60, maxParams: 1e6,
};
const Q_IMAGE = 60;
const Q_PATCH = 3 * 2 * 2 * 2;
function newQwen(poisoned = false, dtype = 'float32'): unknown {
  const model = addon.qwenCreate({ ...QCFG, dtype, ...(dtype === 'bfloat16' ? { decodeMath: 'bf16' } : {}) });
  const vals = [3e38, -3e38, 1e-45, 0, 1e20, -1e20, 65504];
  (addon.qwenTable({ model }) as { size: number }[]).forEach((t, index) => {
    const data = Float32Array.from({ length: t.size }, (_, i) => (poisoned ? vals[(i * 7919 + index) % vals.length] : Math.sin(i * 12.9898 + index) * 0.3));
    addon.qwenSetTensor({ model, index, data });
  });
  return model;
}
const qwenA = newQwen();
const qwenP = newQwen(true);
const qwenB = newQwen(false, 'bfloat16'); // matrices in bf16, decode rows in bf16 math
const qwenModel = (rng: Rng, ctx: Ctx): unknown => {
  if (ctx.fresh) return newQwen();
  const u = rng.next();
  return u < 0.3 ? qwenP : u < 0.5 ? qwenB : qwenA;
};
/** 1-3 sequences; some hold an image run of 1 or 2 merged tokens (grid [1, 2, 2] or [1, 2, 4]). */
function qwenBatch(rng: Rng): Opts {
  const seqs: number[][] = [];
  let images = 0;
  for (let s = rng.int(1, 4); s > 0; s--) {
    const t = [rng.int(0, 60)];
    for (let k = rng.int(0, 6); k > 0; k--) {
      if (rng.next() < 0.2) {
        const n = rng.int(1, 3);
        for (let j = 0; j < n; j++) t.push(Q_IMAGE);
        images += n;
      } else t.push(rng.int(0, 60));
    }
    seqs.push(t);
  }
  const tokens = Int32Array.from(seqs.flat());
  return {
    tokens, lengths: Int32Array.from(seqs.map((q) => q.length)), positions: Int32Array.from({ length: 3 * tokens.length }, (_, i) => i % tokens.length),
    ...(images ? { imageEmbeds: f32(rng, images * 16) } : {}),
  };
}
const qwenS = newQwen(); // sessions only: its weights never change, so its sessions stay fresh
let qwenSession: unknown = addon.qwenSessionCreate({ model: qwenS });
let qwenSessionUses = 0;
const qwenSessionOf = (ctx: Ctx): unknown => {
  if (ctx.fresh) return addon.qwenSessionCreate({ model: newQwen() });
  if (++qwenSessionUses % 40 === 0) {
    addon.qwenSessionDispose({ session: qwenSession });
    qwenSession = addon.qwenSessionCreate({ model: qwenS });
  }
  return qwenSession;
};
const qwenKeys = (rng: Rng, n: number): Opts => ({
  seeds: Array.from({ length: n }, () => rng.int(0, 1000)),
  steps: Array.from({ length: n }, () => rng.int(0, 10)),
  promptIndices: Array.from({ length: n }, (_, i) => i),
  sampleIndices: Array.from({ length: n }, () => 0),
});
/** A live sequence of `session`. */
function qwenSeq(rng: Rng, session: unknown): number {
  const b = qwenBatch(rng);
  const n = (b.lengths as Int32Array).length;
  return (addon.qwenSessionAdd({ session, ...b, next: new Int32Array(n).fill(40), ...qwenKeys(rng, n) }) as Int32Array)[0];
}
const qwenSessionSpecs: Record<string, Spec> = {
  qwenSessionCreate: { base: (rng, ctx) => ({ model: qwenModel(rng, ctx) }) },
  qwenSessionDispose: { base: () => ({ session: addon.qwenSessionCreate({ model: qwenS }) }) },
  qwenSessionAdd: {
    base: (rng, ctx) => {
      const b = qwenBatch(rng);
      const n = (b.lengths as Int32Array).length;
      return { session: qwenSessionOf(ctx), ...b, next: new Int32Array(n).fill(40), ...qwenKeys(rng, n) };
    },
    optional: (rng, o) => ({ counters: Array.from({ length: (o.lengths as Int32Array).length }, () => rng.int(0, 1000)) }),
  },
  qwenSessionAppend: {
    base: (rng, ctx) => {
      const session = qwenSessionOf(ctx);
      const b = qwenBatch(rng);
      const n = (b.lengths as Int32Array).length;
      return { session, ...b, next: new Int32Array(n).fill(50), ids: Int32Array.from({ length: n }, () => qwenSeq(rng, session)) };
    },
  },
  qwenSessionFork: {
    base: (rng, ctx) => {
      const session = qwenSessionOf(ctx);
      const n = rng.int(1, 3);
      return { session, id: qwenSeq(rng, session), n, ...qwenKeys(rng, n) };
    },
  },
  qwenSessionGenerate: {
    base: (rng, ctx) => {
      const session = qwenSessionOf(ctx);
      return { session, ids: Int32Array.from([qwenSeq(rng, session)]), maxNewTokens: rng.int(0, 4) };
    },
    optional: (rng) => ({ temperature: pick(rng, [0, 0.7, 1]), topP: pick(rng, [0.5, 1]), stopTokens: Int32Array.from([3]), bannedTokens: Int32Array.from([0, 1]) }),
    numbers: { maxNewTokens: [NaN, Infinity, -1, 0.5, 1.5, 2 ** 31, 2 ** 53, -0, 0, 7, 64] },
  },
  qwenSessionRelease: {
    base: (rng, ctx) => {
      const session = qwenSessionOf(ctx);
      return { session, ids: Int32Array.from([qwenSeq(rng, session)]) };
    },
  },
};
const qwen: Record<string, Spec> = {
  ...qwenSessionSpecs,
  qwenConfigTable: { base: () => ({ ...QCFG }), optional: (rng) => ({ dtype: pick(rng, ['float32', 'bfloat16']) }), numbers: cfgNumbers },
  qwenCreate: { base: () => ({ ...QCFG }), optional: (rng) => ({ dtype: pick(rng, ['float32', 'bfloat16']), decodeMath: pick(rng, ['exact', 'bf16']) }), numbers: cfgNumbers },
  qwenDispose: { base: () => ({ model: newQwen() }) },
  qwenTable: { base: (rng, ctx) => ({ model: qwenModel(rng, ctx) }) },
  qwenSetTensor: {
    // Tensor 1 (8 values) as float32 values or bf16 bits, into a float32 or a bf16 model.
    base: (rng, ctx) => ({
      model: ctx.fresh ? newQwen() : rng.next() < 0.5 ? qwenB : qwenA,
      index: 1,
      data: rng.next() < 0.5 ? f32(rng, 8, 0.3) : Uint16Array.from(f32(rng, 8, 0.3), (x) => new Uint32Array(Float32Array.of(x).buffer)[0] >>> 16),
    }),
  },
  qwenGetTensor: { base: (rng, ctx) => ({ model: qwenModel(rng, ctx), index: rng.int(0, 5) }) },
  qwenEncodeImages: {
    base: (rng, ctx) => {
      const grids = rng.next() < 0.5 ? [1, 2, 2] : [1, 2, 4, 1, 4, 2];
      let n = 0;
      for (let i = 0; i < grids.length; i += 3) n += grids[i] * grids[i + 1] * grids[i + 2];
      return { model: qwenModel(rng, ctx), grids: Int32Array.from(grids), pixels: f32(rng, n * Q_PATCH) };
    },
  },
  qwenScore: {
    base: (rng, ctx) => {
      const b = qwenBatch(rng);
      return { model: qwenModel(rng, ctx), ...b, targets: Int32Array.from({ length: (b.tokens as Int32Array).length }, () => rng.int(-1, 64)) };
    },
    optional: (rng) => ({ temperature: rng.uniform(0.5, 2), entropy: bool(rng) }),
  },
  qwenLastLogits: { base: (rng, ctx) => ({ model: qwenModel(rng, ctx), ...qwenBatch(rng) }) },
  qwenGenerate: {
    base: (rng, ctx) => {
      const b = qwenBatch(rng);
      return { model: qwenModel(rng, ctx), ...b, next: Int32Array.from({ length: (b.lengths as Int32Array).length }, () => rng.int(0, 40)), maxNewTokens: rng.int(0, 4) };
    },
    optional: (rng) => ({ temperature: pick(rng, [0, 0.7, 1]), topP: pick(rng, [0.5, 1]), seed: rng.int(0, 100), stopTokens: Int32Array.from([3]), bannedTokens: Int32Array.from([0, 1]) }),
    numbers: { maxNewTokens: [NaN, Infinity, -1, 0.5, 1.5, 2 ** 31, 2 ** 53, -0, 0, 7, 64] },
  },
};

const SPECS: Record<string, Spec> = {
  gemm, gemmReference: gemm, gemmBf16, gemmBf16Reference: gemmBf16, softmax, softmaxBackward, layerNorm, layerNormBackward, gelu, geluBackward, attention, attentionBackward,
  attentionCached, attentionDecode, logprob, logprobBackward, logSoftmax, crossEntropy, crossEntropyBackward, grpoAdvantages, grpoLoss,
  adamw, gradNorm, gradClip, fusedLinearLogprob, fusedLinearLogprobBackward, fusedLinearLogprobForwardBackward,
  fusedLinearLogprobWorkspaceBytes, fusedLinearLogprobPlan, ...runtime, ...policy, ...qwen,
};

// ----- mutations ----------------------------------------------------------------------------------

const NUMBERS = [NaN, Infinity, -Infinity, -0, 0, -1, 0.5, 1.5, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 40, 2 ** 53, 2 ** 53 + 2, 1e308, -1e308, Number.MIN_VALUE, -(2 ** 31)];
const isTA = (v: unknown): v is TypedArray => ArrayBuffer.isView(v) && !(v instanceof DataView);
const isHandle = (k: string): boolean => k === 'model' || k === 'session';

/** Wrong-typed values any field may receive. */
function wrongType(rng: Rng): [string, unknown] {
  return pick(rng, [
    ['undefined', undefined], ['null', null], ['string', 'abc'], ['numeric string', '3'], ['true', true], ['object', { length: 3 }],
    ['array', [1, 2, 3]], ['bigint', 3n], ['symbol', Symbol('x')], ['function', () => 3], ['date', new Date(0)],
    ['valueOf object', { valueOf: () => 3 }], ['boxed number', Object(3)], ['empty array', []],
  ] as [string, unknown][]);
}

/** A copy of `v` (also of an already detached or out-of-bounds one: a new empty array). */
const copyOf = <T extends TypedArray>(v: T): T => {
  const c = new (v.constructor as unknown as { new (n: number): T })(v.length);
  if (v.length) c.set(v as never);
  return c;
};

function detached<T extends TypedArray>(v: T): T {
  const c = copyOf(v);
  structuredClone(c.buffer, { transfer: [c.buffer as ArrayBuffer] });
  return c;
}
type TACtor = { new (b: ArrayBufferLike, off?: number, len?: number): TypedArray; new (n: number): TypedArray; BYTES_PER_ELEMENT: number };

/** Hostile variants of a typed array; `valid` ones hold the same elements and must be accepted. */
function mutateTA(rng: Rng, v: TypedArray): { what: string; value: unknown; valid?: boolean } {
  const Ctor = v.constructor as unknown as TACtor;
  const n = v.length, bpe = Ctor.BYTES_PER_ELEMENT;
  const withLen = (m: number): TypedArray => {
    const out = new Ctor(m);
    out.set(v.subarray(0, Math.min(m, n)));
    return out;
  };
  const isFloat = v instanceof Float32Array;
  v = copyOf(v); // an earlier mutation may have detached it
  switch (rng.int(0, 14)) {
    case 0: return rng.next() < 0.1 ? { what: 'length 2^22', value: withLen(2 ** 22) } : { what: 'length+1', value: withLen(n + 1) };
    case 1: return { what: 'length-1', value: withLen(Math.max(0, n - 1)) };
    case 2: return { what: 'length 0', value: new Ctor(0) };
    case 3: return { what: 'length*3+5', value: withLen(n * 3 + 5) };
    case 4: return { what: 'detached', value: detached(v) };
    case 5: {
      const sab = new SharedArrayBuffer(n * bpe);
      const out = new Ctor(sab);
      out.set(v);
      return { what: 'SharedArrayBuffer', value: out, valid: true };
    }
    case 6: {
      const out = new Ctor(new ArrayBuffer((n + 5) * bpe), 3 * bpe, n);
      out.set(v);
      return { what: 'offset view', value: out, valid: true };
    }
    case 7: {
      const buf = new (ArrayBuffer as unknown as { new (n: number, o: { maxByteLength: number }): ArrayBuffer })(n * bpe, { maxByteLength: (2 * n + 8) * bpe });
      const out = new Ctor(buf);
      out.set(v);
      return { what: 'resizable (length-tracking)', value: out, valid: true };
    }
    case 8: {
      const buf = new (ArrayBuffer as unknown as { new (n: number, o: { maxByteLength: number }): ArrayBuffer & { resize(n: number): void } })((n + 2) * bpe, {
        maxByteLength: (n + 8) * bpe,
      });
      const out = new Ctor(buf, bpe, n);
      buf.resize(0); // the fixed-length view is now out of bounds
      return { what: 'resizable shrunk (out-of-bounds view)', value: out };
    }
    case 9: {
      const kinds: [string, (x: TypedArray) => unknown][] = [
        ['Float64Array', (x) => Float64Array.from(x)], ['Int32Array/Float32Array swap', (x) => (x instanceof Float32Array ? Int32Array.from(x) : Float32Array.from(x))],
        ['Uint8Array', (x) => new Uint8Array(x.buffer.slice(0))], ['Uint8ClampedArray', (x) => Uint8ClampedArray.from(x)], ['Int16Array', (x) => Int16Array.from(x)],
        ['Uint32Array', (x) => Uint32Array.from(x)], ['BigInt64Array', (x) => new BigInt64Array(x.length)], ['DataView', (x) => new DataView(x.buffer.slice(0))],
        ['ArrayBuffer', (x) => x.buffer.slice(0)], ['plain Array', (x) => Array.from(x)], ['Buffer', (x) => Buffer.from(x.buffer.slice(0))],
        ['Int8Array', (x) => Int8Array.from(x)], ['Uint16Array', (x) => Uint16Array.from(x)],
      ];
      const [what, f] = pick(rng, kinds);
      return { what, value: f(v) };
    }
    case 10:
    case 11: {
      const out = v.slice();
      const bad = isFloat ? [NaN, Infinity, -Infinity, 3.4e38, -3.4e38, -0, 1e-45] : v instanceof Int32Array ? [-1, -2, -(2 ** 31), 2 ** 31 - 1, 268, 259, 1e9] : [0, 255];
      const x = pick(rng, bad);
      for (let k = rng.int(1, 3); k > 0 && n > 0; k--) out[rng.int(0, n)] = x;
      return { what: `element ${x}`, value: out };
    }
    case 12: {
      // Unaligned bytes: a Uint8Array view at an odd offset (Float32/Int32 views cannot be unaligned).
      const u = new Uint8Array(n * bpe + 1).subarray(1);
      return { what: 'unaligned Uint8Array view', value: u };
    }
    default: return { what: 'copy with a replaced prototype', value: Object.setPrototypeOf(v.slice(), Object.freeze(Object.create(Object.getPrototypeOf(v)))), valid: true };
  }
}

/** Hostile variants of a plain array (of numbers, strings or Float32Arrays). */
function mutateArray(rng: Rng, v: unknown[]): { what: string; value: unknown } {
  const sample = v.length ? v[0] : 0;
  const elem = (): unknown => (isTA(sample) ? pick(rng, [new Float32Array(0), detached(sample as Float32Array), Float64Array.from([1, 2]), 'x', null, undefined]) : pick(rng, [NaN, -1, 1.5, 2 ** 53 + 2, Infinity, '1', null, undefined, {}, 3n, Symbol('s')]));
  switch (rng.int(0, 9)) {
    case 0: return { what: 'array length+1', value: [...v, v.length ? v[0] : 0] };
    case 1: return { what: 'array length-1', value: v.slice(0, -1) };
    case 2: return { what: 'empty array', value: [] };
    case 3: {
      const out = v.slice();
      const e = elem();
      out[rng.int(0, Math.max(1, out.length))] = e;
      return { what: `array element ${typeof e === 'symbol' ? 'symbol' : isTA(e) ? e.constructor.name : String(e)}`, value: out };
    }
    case 4: return rng.next() < 0.5 ? { what: 'sparse array', value: new Array(Math.max(1, v.length)) } : { what: 'sparse array of length 2^32-1', value: new Array(2 ** 32 - 1) };
    case 5: return { what: 'array of 5000', value: Array.from({ length: 5000 }, (_, i) => v[i % Math.max(1, v.length)] ?? 0) };
    case 6: return { what: 'array of 1 MB strings', value: typeof sample === 'string' ? ['y'.repeat(1 << 20)] : ['y'.repeat(1 << 20)] };
    case 7: {
      const out = v.slice();
      Object.defineProperty(out, 0, { get: () => { throw new FuzzThrow(); } });
      return { what: 'array with a throwing element getter', value: out };
    }
    default: return { what: 'typed array in place of an Array', value: Float32Array.from(v.filter((x) => typeof x === 'number') as number[]) };
  }
}

function mutateHandle(rng: Rng, k: string): { what: string; value: unknown } {
  const other = k === 'model' ? session : modelA;
  return pick(rng, [
    { what: 'plain object handle', value: {} },
    { what: 'handle of the other kind', value: other },
    { what: 'disposed handle', value: k === 'model' ? disposedModel : disposedSession },
    { what: 'number handle', value: 1 },
    { what: 'null-prototype object handle', value: Object.create(null) },
    { what: 'Proxy of a handle', value: new Proxy({}, {}) },
    { what: 'options object as handle', value: { model: modelA, session } },
  ]);
}

interface Mutation {
  what: string;
  kind: string;
  /** The mutated options must be accepted (same values in another form). */
  valid?: boolean;
  /** The call may throw an error of the fuzzer's own (a hostile getter's). */
  foreign?: boolean;
}

/** Mutates field `k` of `o` in place. */
function mutateField(rng: Rng, spec: Spec, o: Opts, k: string): Mutation {
  const v = o[k];
  const r = rng.next();
  if (r < 0.12) {
    delete o[k];
    return { what: `delete \`${k}\``, kind: 'delete' };
  }
  if (r < 0.3) {
    const [what, value] = wrongType(rng);
    o[k] = value;
    return { what: `\`${k}\` = ${what}`, kind: 'wrong type' };
  }
  if (isHandle(k)) {
    const m = mutateHandle(rng, k);
    o[k] = m.value;
    return { what: `\`${k}\`: ${m.what}`, kind: 'handle' };
  }
  if (typeof v === 'number') {
    const list = spec.numbers?.[k] ?? [...NUMBERS, v + 1, v - 1, v * 2, -v - 1, v + 0.5, v * 1e6];
    const x = pick(rng, list);
    o[k] = x;
    return { what: `\`${k}\` = ${Object.is(x, -0) ? '-0' : x}`, kind: 'number' };
  }
  if (isTA(v)) {
    // Aliasing: another typed-array field of the same kind and length.
    const twins = Object.keys(o).filter((j) => j !== k && isTA(o[j]) && (o[j] as TypedArray).constructor === v.constructor && (o[j] as TypedArray).length === v.length);
    if (twins.length && rng.next() < 0.15) {
      const j = pick(rng, twins);
      o[k] = o[j];
      return { what: `\`${k}\` is \`${j}\` (aliased)`, kind: 'aliased array' };
    }
    const m = mutateTA(rng, v);
    o[k] = m.value;
    return { what: `\`${k}\`: ${m.what}`, kind: m.valid ? 'typed array (valid form)' : 'typed array', valid: m.valid };
  }
  if (Array.isArray(v)) {
    const m = mutateArray(rng, v);
    o[k] = m.value;
    return { what: `\`${k}\`: ${m.what}`, kind: 'array', foreign: m.what.includes('throwing') };
  }
  if (typeof v === 'string') {
    const x = pick(rng, ['bogus', '', v.toUpperCase(), `${v} `, `${v}\u0000x`, 'x'.repeat(10000), 0]);
    o[k] = x;
    return { what: `\`${k}\` = ${JSON.stringify(x).slice(0, 20)}`, kind: 'choice string' };
  }
  if (typeof v === 'boolean') {
    const x = pick(rng, [0, 1, 'true', null, new Boolean(true)]);
    o[k] = x;
    return { what: `\`${k}\` = ${String(x)}`, kind: 'boolean' };
  }
  const [what, value] = wrongType(rng);
  o[k] = value;
  return { what: `\`${k}\` = ${what}`, kind: 'wrong type' };
}

/** A non-object first argument, or none, or the same options in another valid form. */
function topLevel(rng: Rng, o: Opts): { args: unknown[]; m: Mutation } {
  const variants: [string, () => unknown[], boolean?, boolean?][] = [
    ['no arguments', () => []],
    ['null', () => [null]],
    ['undefined', () => [undefined]],
    ['number', () => [42]],
    ['string', () => ['options']],
    ['array', () => [[o]]],
    ['typed array', () => [new Float32Array(4)]],
    ['symbol', () => [Symbol('o')]],
    ['bigint', () => [1n]],
    ['boolean', () => [true]],
    ['extra arguments', () => [o, o, 1], true],
    ['options via prototype', () => [Object.create(o)], true],
    ['frozen options', () => [Object.freeze({ ...o })], true],
    ['null-prototype options', () => [Object.assign(Object.create(null), o)], true],
    ['Proxy options', () => [new Proxy(o, {})], true],
    ['Proxy with a throwing get trap', () => [new Proxy(o, { get: () => { throw new FuzzThrow(); } })], false, true],
    ['Proxy whose get trap throws a non-Error', () => [new Proxy(o, { get: () => { throw 42; } })], false, true],
  ];
  const [what, make, valid, foreign] = pick(rng, variants);
  return { args: make(), m: { what: `options: ${what}`, kind: valid ? 'options (valid form)' : foreign ? 'hostile options object' : 'not an options object', valid, foreign } };
}

/**
 * Hostile JS run while the addon reads the options: a getter that detaches (transfers) or shrinks an
 * array the addon may already hold, a getter that answers differently each time, a getter that
 * re-enters the addon, a getter that throws.
 */
function hostileGetter(rng: Rng, name: string, o: Opts): Mutation {
  const fields = Object.keys(o);
  const arrays = fields.filter((k) => isTA(o[k]) && (o[k] as TypedArray).length > 0);
  let variant = rng.int(0, 5);
  if (variant <= 1 && (!arrays.length || fields.length < 2)) variant = 2;
  if (variant <= 1) {
    // The target gets a private buffer, so that detaching it cannot hit another field; the getter is another field's.
    const t = pick(rng, arrays);
    const own = (o[t] as TypedArray).slice();
    const shrink = variant === 1;
    let resizable: (ArrayBuffer & { resize(n: number): void }) | undefined;
    if (shrink) {
      resizable = new (ArrayBuffer as unknown as { new (n: number, o: { maxByteLength: number }): ArrayBuffer & { resize(n: number): void } })(own.byteLength, {
        maxByteLength: own.byteLength + 64,
      });
      const view = new (own.constructor as unknown as TACtor)(resizable, 0, own.length);
      view.set(own);
      o[t] = view;
    } else o[t] = own;
    const k = pick(rng, fields.filter((f) => f !== t));
    const orig = o[k];
    let calls = 0;
    Object.defineProperty(o, k, {
      enumerable: true,
      get() {
        if (calls++ === 0) {
          if (resizable) resizable.resize(0);
          else structuredClone(own.buffer, { transfer: [own.buffer as ArrayBuffer] });
          gc();
        }
        return orig;
      },
    });
    return { what: `getter of \`${k}\` ${shrink ? 'shrinks' : 'detaches'} \`${t}\``, kind: 'getter detaches an array' };
  }
  const k = pick(rng, fields);
  const orig = o[k];
  let calls = 0;
  if (variant === 2) {
    Object.defineProperty(o, k, { enumerable: true, get: () => (calls++ === 0 ? orig : pick(rng, [undefined, 'x', -1, 2 ** 40, new Float32Array(1), null])) });
    return { what: `getter of \`${k}\` answers differently after the first read`, kind: 'getter changes its answer' };
  }
  if (variant === 3) {
    Object.defineProperty(o, k, { enumerable: true, get: () => { throw new FuzzThrow(); } });
    return { what: `getter of \`${k}\` throws`, kind: 'getter throws', foreign: true };
  }
  // Re-entry: the getter calls the same export with its own valid options (errors it gets are its own).
  const spec = SPECS[baseName(name)];
  const again = spec.base(new Rng(1), makeCtx(false));
  Object.defineProperty(o, k, {
    enumerable: true,
    get() {
      if (calls++ === 0) {
        try {
          const r = addon[baseName(name)](again);
          void r;
        } catch {
          /* the nested call's own outcome does not matter */
        }
      }
      return orig;
    },
  });
  return { what: `getter of \`${k}\` re-enters ${baseName(name)}`, kind: 'getter re-enters the addon', foreign: true };
}

const baseName = (name: string): string => (name.endsWith('Async') ? name.slice(0, -5) : name);

// ----- running and tallying -----------------------------------------------------------------------

type Outcome = 'ok' | 'TypeError' | 'RangeError' | 'Error' | 'foreign';
const tally = (): Record<Outcome, number> => ({ ok: 0, TypeError: 0, RangeError: 0, Error: 0, foreign: 0 });
const perFn: Record<string, Record<Outcome, number>> = {};
const perKind: Record<string, Record<Outcome, number>> = {};
const samples: Record<string, string> = {};
const violations: string[] = [];
let slowest = { ms: 0, what: '' };
let cases = 0;
let backticked = 0;
let typedErrors = 0;

async function settle(fn: () => unknown, after?: () => void): Promise<{ ok: true } | { ok: false; err: unknown }> {
  try {
    const r = fn();
    if (after) after();
    if (r && typeof (r as Promise<unknown>).then === 'function') await r;
    return { ok: true };
  } catch (err) {
    return { ok: false, err };
  }
}

function record(name: string, m: Mutation, res: { ok: true } | { ok: false; err: unknown }, ms: number, desc: string, perFunction = true): void {
  const base = baseName(name);
  let outcome: Outcome;
  const bad = (why: string): void => void violations.push(`${desc}: ${why}`);
  if (res.ok) {
    outcome = 'ok';
  } else {
    const err = res.err;
    if (err instanceof FuzzThrow || err === 42) {
      outcome = 'foreign';
      if (!m.foreign) bad(`a fuzzer getter's error came back from a case that has none: ${String(err)}`);
    } else if (!util.types.isNativeError(err)) {
      outcome = 'foreign';
      bad(`threw a non-Error: ${String(err)}`);
    } else {
      const e = err as Error;
      if (e.name === 'TypeError' || e.name === 'RangeError' || e.name === 'Error') outcome = e.name;
      else {
        outcome = 'foreign';
        bad(`threw a ${e.name}: ${e.message}`);
      }
      if (!e.message) bad(`${e.name} with an empty message`);
      else if (!m.foreign && !e.message.startsWith(`${base}: `)) bad(`${e.name} whose message does not start with "${base}: ": ${e.message}`);
      if (outcome !== 'foreign' && !m.foreign) {
        typedErrors++;
        if (/`[^`]+`/.test(e.message)) backticked++;
        const key = `${m.kind} -> ${e.name}`;
        if (!samples[key]) samples[key] = e.message.slice(0, 200);
      }
    }
  }
  if (m.valid && outcome !== 'ok') bad(`a valid form was refused: ${res.ok ? '' : String((res.err as Error)?.message ?? res.err)}`);
  if (m.kind === 'not an options object' && outcome === 'ok' && !SPECS[base].noOptions) bad('a non-object first argument was accepted');
  if (perFunction) (perFn[name] ??= tally())[outcome]++;
  (perKind[m.kind] ??= tally())[outcome]++;
  if (ms > slowest.ms) slowest = { ms, what: desc };
  if (ms > 5000) bad(`took ${ms.toFixed(0)} ms`);
}

/** Builds case `i` of export `name`: the options and what was done to them. */
function buildCase(name: string, spec: Spec, i: number, rng: Rng): { args: unknown[]; m: Mutation; after?: () => void; twice?: boolean } {
  const isAsync = name.endsWith('Async');
  const fresh = rng.next() < 0.1 || (isAsync && i % 7 === 6);
  const ctx = makeCtx(fresh);
  const o = spec.base(rng, ctx);
  if (i === 0) return { args: [o], m: { what: 'valid options', kind: 'valid options', valid: true } };
  const opt = spec.optional ? spec.optional(rng, o) : {};
  if (i === 1) return { args: [{ ...o, ...opt }], m: { what: 'valid options with every optional field', kind: 'valid options', valid: true } };
  if (i === 2) return { args: [], m: { what: 'no arguments', kind: spec.noOptions ? 'valid options' : 'not an options object' } };
  if (spec.noOptions) return topLevel(rng, o);
  // Optional fields too, so that their readers are fuzzed: none, all, or some (which may not go together,
  // e.g. `beta` > 0 without `refLogp`: then the options are not known to be valid).
  const mode = rng.next();
  const partial = mode >= 0.7 && Object.keys(opt).length > 1;
  for (const [k, v] of Object.entries(opt)) if (mode >= 0.4 && (mode < 0.7 || rng.next() < 0.5)) o[k] = v;
  const built = buildMutation(rng, name, spec, o, opt, ctx, isAsync);
  if (partial && built.m.valid) built.m = { ...built.m, valid: false, kind: built.m.kind };
  return built;
}

function buildMutation(rng: Rng, name: string, spec: Spec, o: Opts, opt: Opts, ctx: Ctx, isAsync: boolean): { args: unknown[]; m: Mutation; after?: () => void; twice?: boolean } {
  const r = rng.next();
  if (r < 0.12) return topLevel(rng, o);
  if (r < 0.24) return { args: [o], m: hostileGetter(rng, name, o) };
  if (isAsync && r < 0.36) {
    const arrays = Object.keys(o).filter((k) => isTA(o[k]) && (o[k] as TypedArray).length > 0);
    if (rng.next() < 0.7 && arrays.length) {
      // Detach (transfer away and collect) arrays while the work runs on the thread pool.
      const which = arrays.filter(() => rng.next() < 0.6);
      for (const k of which) o[k] = (o[k] as TypedArray).slice(); // own buffers
      const after = (): void => {
        for (const k of which) structuredClone((o[k] as TypedArray).buffer, { transfer: [(o[k] as TypedArray).buffer as ArrayBuffer] });
        gc();
      };
      return { args: [o], m: { what: `detach ${which.map((k) => `\`${k}\``).join(', ') || 'nothing'} while the call runs`, kind: 'detached while running' }, after };
    }
    if (ctx.fresh && (o.model || o.session)) {
      const after = (): void => {
        if (o.model) (name.startsWith('qwen') ? addon.qwenDispose : addon.policyDispose)({ model: o.model });
        if (o.session) (name.startsWith('qwen') ? addon.qwenSessionDispose : addon.sessionDispose)({ session: o.session });
      };
      return { args: [o], m: { what: 'dispose the handle while the call runs', kind: 'disposed while running' }, after };
    }
    return { args: [o], m: { what: 'the same call twice at once', kind: 'concurrent calls' }, twice: true };
  }
  const fields = [...new Set([...Object.keys(o), ...Object.keys(opt)])];
  if (!fields.length) return topLevel(rng, o);
  const first = pick(rng, fields);
  let m = mutateField(rng, spec, o, first);
  if (rng.next() < 0.3 && fields.length > 1) {
    const m2 = mutateField(rng, spec, o, pick(rng, fields.filter((f) => f !== first)));
    m = { what: `${m.what}; ${m2.what}`, kind: 'two fields mutated', valid: m.valid && m2.valid, foreign: m.foreign || m2.foreign };
  }
  return { args: [o], m };
}

/** Targeted hostile scenarios with large arrays, where a use-after-free would reliably crash. */
async function scenarios(): Promise<void> {
  const n = 384;
  const big = (): Float32Array => new Float32Array(n * n).fill(0.5);
  const run = async (what: string, fn: () => unknown, after?: () => void): Promise<void> => {
    log(`scenario: ${what}`);
    const t0 = performance.now();
    const res = await settle(fn, after);
    record('gemm', { what, kind: 'large arrays detached' }, res, performance.now() - t0, `scenario: ${what}`, false);
  };
  for (let k = 0; k < 3; k++) {
    const A = big(), B = big(), C = big();
    await run('gemmAsync, then A, B and C detached and collected', () => addon.gemmAsync({ A, B, C, M: n, N: n, K: n }), () => {
      for (const x of [A, B, C]) structuredClone(x.buffer, { transfer: [x.buffer as ArrayBuffer] });
      gc();
      for (let j = 0; j < 8; j++) big().fill(1);
    });
  }
  const A = big(), B = big(), C = big();
  const o: Opts = { A, B, M: n, N: n, K: n };
  Object.defineProperty(o, 'C', { get: () => (structuredClone(A.buffer, { transfer: [A.buffer as ArrayBuffer] }), gc(), C) });
  await run('gemm whose `C` getter detaches A and collects it', () => addon.gemm(o));
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const names = Object.keys(addon).filter((k) => typeof addon[k] === 'function').sort();
  const missing = names.filter((n) => !SPECS[baseName(n)]);
  for (const name of names) {
    if (ONLY && !ONLY.test(name)) continue;
    const spec = SPECS[baseName(name)];
    if (!spec) continue;
    const fn = addon[name];
    for (let i = 0; i < CASES; i++) {
      if ((ONLY_CASE !== undefined && i !== ONLY_CASE) || SKIP.has(`${name}#${i}`)) continue;
      const rng = new Rng((SEED * 1000003 + [...name].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7) * 101 + i) >>> 0);
      let c;
      try {
        c = buildCase(name, spec, i, rng);
      } catch (err) {
        violations.push(`${name} #${i}: building the case failed: ${(err as Error).stack}`);
        continue;
      }
      if (SKIP_KINDS?.test(c.m.kind) || SKIP_KINDS?.test(c.m.what)) continue;
      const desc = `${name} #${i}: ${c.m.what}`;
      log(desc);
      cases++;
      const t = performance.now();
      let res;
      if (c.twice) {
        const [a, b] = await Promise.all([settle(() => fn(...c.args)), settle(() => fn(...c.args))]);
        res = a.ok ? b : a;
      } else res = await settle(() => fn(...c.args), c.after);
      record(name, c.m, res, performance.now() - t, desc);
      spec.restore?.();
    }
  }
  if (!ONLY) await scenarios();
  const summary = {
    seed: SEED,
    casesPerFunction: CASES,
    cases,
    functions: names.length,
    missing,
    perFn,
    perKind,
    samples,
    violations,
    backticked,
    typedErrors,
    slowest,
    maxRssMiB: process.resourceUsage().maxRSS / 1024,
    seconds: (performance.now() - t0) / 1000,
  };
  log('done');
  process.stdout.write(`\n${JSON.stringify(summary)}\n`);
}

main().catch((err) => {
  process.stdout.write(`\n${JSON.stringify({ fatal: String((err as Error)?.stack ?? err) })}\n`);
  process.exitCode = 1;
});
