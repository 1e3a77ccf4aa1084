// Bad input for every layer entry point: each must throw (sync) or reject (async) a TypeError or
// RangeError naming the argument, before any work is scheduled.
import {
  adamw,
  adamwAsync,
  attention,
  attentionAsync,
  attentionBackward,
  attentionBackwardAsync,
  attentionCached,
  attentionCachedAsync,
  gradClip,
  gradClipAsync,
  gradNorm,
  gradNormAsync,
  layerNorm,
  layerNormAsync,
  layerNormBackward,
  layerNormBackwardAsync,
  softmax,
  softmaxAsync,
  softmaxBackward,
  softmaxBackwardAsync,
} from '../src/native';
import { nativeFunctions } from '../src/native/runtime';
import { expectRejects, expectThrows } from './helpers/errors';

type AnyFn = (a: any) => unknown; // eslint-disable-line @typescript-eslint/no-explicit-any
const f = (n: number) => new Float32Array(n);
const detached = (n: number) => {
  const a = new Float32Array(n);
  structuredClone(a.buffer, { transfer: [a.buffer] });
  return a;
};

// [N, C] = [3, 5]
const ln = () => ({ input: f(15), weight: f(5), bias: f(5), N: 3, C: 5 });
const lnb = () => ({ dout: f(15), input: f(15), weight: f(5), mean: f(3), rstd: f(3), N: 3, C: 5 });
const sm = () => ({ input: f(15), N: 3, C: 5 });
const smb = () => ({ probs: f(15), dout: f(15), N: 3, C: 5 });
// B=2, T=3, C=4, H=2
const at = () => ({ qkv: f(2 * 3 * 12), B: 2, T: 3, C: 4, H: 2 });
const atb = () => ({ dout: f(24), qkv: f(72), out: f(24), lse: f(12), B: 2, T: 3, C: 4, H: 2 });
const atc = () => ({ B: 2, Tq: 1, Tk: 3, C: 4, H: 2, q: f(8), k: f(24), v: f(24) });
const aw = () => ({ param: f(10), grad: f(10), m: f(10), v: f(10), lr: 1e-3, step: 1 });
const gc = () => ({ grads: [f(3), f(4)], maxNorm: 1 });

type Case = [string, AnyFn, AnyFn, Record<string, unknown>, RegExp];
const cases: Case[] = [
  // layerNorm
  ['layerNorm wrong input length', layerNorm, layerNormAsync, { ...ln(), input: f(14) }, /`input`/],
  ['layerNorm wrong weight length', layerNorm, layerNormAsync, { ...ln(), weight: f(4) }, /`weight`/],
  ['layerNorm bias of another type', layerNorm, layerNormAsync, { ...ln(), bias: new Float64Array(5) }, /`bias`/],
  ['layerNorm missing bias', layerNorm, layerNormAsync, { ...ln(), bias: undefined }, /`bias`/],
  ['layerNorm non-integer C', layerNorm, layerNormAsync, { ...ln(), C: 2.5 }, /`C`/],
  ['layerNorm negative N', layerNorm, layerNormAsync, { ...ln(), N: -3 }, /`N`/],
  ['layerNorm NaN eps', layerNorm, layerNormAsync, { ...ln(), eps: NaN }, /`eps`/],
  ['layerNorm negative eps', layerNorm, layerNormAsync, { ...ln(), eps: -1 }, /`eps`/],
  ['layerNorm wrong out length', layerNorm, layerNormAsync, { ...ln(), out: f(16) }, /`out`/],
  ['layerNorm wrong mean length', layerNorm, layerNormAsync, { ...ln(), mean: f(2) }, /`mean`/],
  ['layerNorm wrong rstd length', layerNorm, layerNormAsync, { ...ln(), rstd: f(4) }, /`rstd`/],
  ['layerNorm detached input', layerNorm, layerNormAsync, { ...ln(), input: detached(15) }, /`input`/],
  ['layerNormBackward wrong dout', layerNormBackward, layerNormBackwardAsync, { ...lnb(), dout: f(10) }, /`dout`/],
  ['layerNormBackward wrong mean', layerNormBackward, layerNormBackwardAsync, { ...lnb(), mean: f(1) }, /`mean`/],
  ['layerNormBackward wrong rstd', layerNormBackward, layerNormBackwardAsync, { ...lnb(), rstd: 'x' }, /`rstd`/],
  ['layerNormBackward wrong dweight', layerNormBackward, layerNormBackwardAsync, { ...lnb(), dweight: f(6) }, /`dweight`/],
  ['layerNormBackward wrong dbias', layerNormBackward, layerNormBackwardAsync, { ...lnb(), dbias: f(6) }, /`dbias`/],
  ['layerNormBackward wrong dinput', layerNormBackward, layerNormBackwardAsync, { ...lnb(), dinput: f(3) }, /`dinput`/],
  ['layerNormBackward non-boolean accumulate', layerNormBackward, layerNormBackwardAsync, { ...lnb(), accumulate: 1 }, /`accumulate`/],
  ['layerNormBackward detached weight', layerNormBackward, layerNormBackwardAsync, { ...lnb(), weight: detached(5) }, /`weight`/],
  // softmax
  ['softmax wrong input length', softmax, softmaxAsync, { ...sm(), input: f(16) }, /`input`/],
  ['softmax zero C', softmax, softmaxAsync, { ...sm(), C: 0 }, /`C`/],
  ['softmax NaN scale', softmax, softmaxAsync, { ...sm(), scale: NaN }, /`scale`/],
  ['softmax zero scale', softmax, softmaxAsync, { ...sm(), scale: 0 }, /`scale`/],
  ['softmax wrong out', softmax, softmaxAsync, { ...sm(), out: f(5) }, /`out`/],
  ['softmax detached input', softmax, softmaxAsync, { ...sm(), input: detached(15) }, /`input`/],
  ['softmaxBackward wrong probs', softmaxBackward, softmaxBackwardAsync, { ...smb(), probs: f(14) }, /`probs`/],
  ['softmaxBackward wrong dout', softmaxBackward, softmaxBackwardAsync, { ...smb(), dout: new Int32Array(15) }, /`dout`/],
  ['softmaxBackward Infinity scale', softmaxBackward, softmaxBackwardAsync, { ...smb(), scale: Infinity }, /`scale`/],
  ['softmaxBackward wrong dinput', softmaxBackward, softmaxBackwardAsync, { ...smb(), dinput: f(1) }, /`dinput`/],
  // attention
  ['attention wrong qkv length', attention, attentionAsync, { ...at(), qkv: f(71) }, /`qkv`/],
  ['attention H not dividing C', attention, attentionAsync, { ...at(), H: 3, qkv: f(72) }, /`H`/],
  ['attention zero H', attention, attentionAsync, { ...at(), H: 0 }, /`H`/],
  ['attention non-integer T', attention, attentionAsync, { ...at(), T: 1.5 }, /`T`/],
  ['attention string B', attention, attentionAsync, { ...at(), B: '2' }, /`B`/],
  ['attention mask of the wrong length', attention, attentionAsync, { ...at(), mask: new Int32Array(5) }, /`mask`/],
  ['attention mask of the wrong type', attention, attentionAsync, { ...at(), mask: new Uint8Array(6) }, /`mask`/],
  ['attention wrong out', attention, attentionAsync, { ...at(), out: f(23) }, /`out`/],
  ['attention wrong lse', attention, attentionAsync, { ...at(), lse: f(6) }, /`lse`/],
  ['attention detached qkv', attention, attentionAsync, { ...at(), qkv: detached(72) }, /`qkv`/],
  ['attentionBackward wrong dout', attentionBackward, attentionBackwardAsync, { ...atb(), dout: f(25) }, /`dout`/],
  ['attentionBackward wrong out', attentionBackward, attentionBackwardAsync, { ...atb(), out: f(12) }, /`out`/],
  ['attentionBackward wrong lse', attentionBackward, attentionBackwardAsync, { ...atb(), lse: f(13) }, /`lse`/],
  ['attentionBackward wrong dqkv', attentionBackward, attentionBackwardAsync, { ...atb(), dqkv: f(24) }, /`dqkv`/],
  ['attentionBackward wrong mask', attentionBackward, attentionBackwardAsync, { ...atb(), mask: new Int32Array(7) }, /`mask`/],
  ['attentionBackward H not dividing C', attentionBackward, attentionBackwardAsync, { ...atb(), H: 3 }, /`H`/],
  ['attentionBackward missing qkv', attentionBackward, attentionBackwardAsync, { ...atb(), qkv: undefined }, /`qkv`/],
  ['attentionCached Tk < Tq', attentionCached, attentionCachedAsync, { ...atc(), Tq: 4 }, /`Tk`/],
  ['attentionCached capacity < Tk', attentionCached, attentionCachedAsync, { ...atc(), capacity: 2 }, /`capacity`/],
  ['attentionCached wrong k', attentionCached, attentionCachedAsync, { ...atc(), k: f(23) }, /`k`/],
  ['attentionCached wrong v', attentionCached, attentionCachedAsync, { ...atc(), v: f(25) }, /`v`/],
  ['attentionCached wrong q', attentionCached, attentionCachedAsync, { ...atc(), q: f(16) }, /`q`/],
  ['attentionCached H not dividing C', attentionCached, attentionCachedAsync, { ...atc(), H: 3 }, /`H`/],
  ['attentionCached wrong mask', attentionCached, attentionCachedAsync, { ...atc(), mask: new Int32Array(2) }, /`mask`/],
  ['attentionCached wrong lse', attentionCached, attentionCachedAsync, { ...atc(), lse: f(3) }, /`lse`/],
  // adamw
  ['adamw NaN lr', adamw, adamwAsync, { ...aw(), lr: NaN }, /`lr`/],
  ['adamw negative lr', adamw, adamwAsync, { ...aw(), lr: -1 }, /`lr`/],
  ['adamw missing lr', adamw, adamwAsync, { ...aw(), lr: undefined }, /`lr`/],
  ['adamw step 0', adamw, adamwAsync, { ...aw(), step: 0 }, /`step`/],
  ['adamw fractional step', adamw, adamwAsync, { ...aw(), step: 1.5 }, /`step`/],
  ['adamw beta1 = 1', adamw, adamwAsync, { ...aw(), beta1: 1 }, /`beta1`/],
  ['adamw negative beta2', adamw, adamwAsync, { ...aw(), beta2: -0.1 }, /`beta2`/],
  ['adamw NaN eps', adamw, adamwAsync, { ...aw(), eps: NaN }, /`eps`/],
  ['adamw negative weightDecay', adamw, adamwAsync, { ...aw(), weightDecay: -0.1 }, /`weightDecay`/],
  ['adamw wrong grad length', adamw, adamwAsync, { ...aw(), grad: f(9) }, /`grad`/],
  ['adamw wrong m length', adamw, adamwAsync, { ...aw(), m: f(11) }, /`m`/],
  ['adamw wrong v type', adamw, adamwAsync, { ...aw(), v: [0, 0] }, /`v`/],
  ['adamw empty param', adamw, adamwAsync, { ...aw(), param: f(0), grad: f(0), m: f(0), v: f(0) }, /`param`/],
  ['adamw detached param', adamw, adamwAsync, { ...aw(), param: detached(10) }, /`param`/],
  ['adamw detached grad', adamw, adamwAsync, { ...aw(), grad: detached(10) }, /`grad`/],
  // grad clip
  ['gradClip grads not an array', gradClip, gradClipAsync, { ...gc(), grads: f(3) }, /`grads`/],
  ['gradClip element of another type', gradClip, gradClipAsync, { ...gc(), grads: [f(3), new Float64Array(2)] }, /`grads\[1\]`/],
  ['gradClip detached element', gradClip, gradClipAsync, { ...gc(), grads: [f(3), detached(4)] }, /`grads\[1\]`/],
  ['gradClip NaN maxNorm', gradClip, gradClipAsync, { ...gc(), maxNorm: NaN }, /`maxNorm`/],
  ['gradClip zero maxNorm', gradClip, gradClipAsync, { ...gc(), maxNorm: 0 }, /`maxNorm`/],
  ['gradClip missing maxNorm', gradClip, gradClipAsync, { grads: [f(1)] }, /`maxNorm`/],
  ['gradNorm missing grads', gradNorm, gradNormAsync, {}, /`grads`/],
  ['gradNorm element null', gradNorm, gradNormAsync, { grads: [null] }, /`grads\[0\]`/],
];

// `reference` (run the *_ref kernel) must be a boolean: a TypeError naming it, for every entry point.
const referenceCases: [string, AnyFn, AnyFn, Record<string, unknown>][] = [
  ['layerNorm', layerNorm, layerNormAsync, ln()],
  ['layerNormBackward', layerNormBackward, layerNormBackwardAsync, lnb()],
  ['softmax', softmax, softmaxAsync, sm()],
  ['softmaxBackward', softmaxBackward, softmaxBackwardAsync, smb()],
  ['attention', attention, attentionAsync, at()],
  ['attentionBackward', attentionBackward, attentionBackwardAsync, atb()],
  ['attentionCached', attentionCached, attentionCachedAsync, atc()],
  ['adamw', adamw, adamwAsync, aw()],
  ['gradNorm', gradNorm, gradNormAsync, { grads: gc().grads }],
  ['gradClip', gradClip, gradClipAsync, gc()],
];

describe('layer kernels reject bad input', () => {
  it.each(referenceCases)("%s rejects reference: 'yes' with a TypeError naming `reference`", async (_name, sync, async, args) => {
    expectThrows(() => sync({ ...args, reference: 'yes' }), 'TypeError', /boolean for `reference`/);
    await expectRejects(async({ ...args, reference: 'yes' }) as Promise<unknown>, 'TypeError', /boolean for `reference`/);
    // the same arguments are accepted with a boolean (the error above is about `reference` alone)
    expect(() => sync({ ...args, reference: true })).not.toThrow();
  });

  it.each(cases)('%s (sync throws)', (_name, sync, _async, args, re) => {
    let err: unknown;
    try {
      sync(args);
    } catch (e) {
      err = e;
    }
    expect(['TypeError', 'RangeError']).toContain((err as Error).name); // native errors come from another realm: check the name
    expect((err as Error).message).toMatch(re);
  });

  it.each(cases)('%s (async rejects)', async (_name, _sync, async, args, re) => {
    const p = async(args) as Promise<unknown>;
    await expect(p).rejects.toThrow(re);
    const err = await p.catch((e: unknown) => e);
    expect(['TypeError', 'RangeError']).toContain((err as Error).name); // native errors come from another realm: check the name
  });

  it('the raw native functions reject a missing options object', () => {
    const raw = nativeFunctions<Record<string, AnyFn>>();
    for (const name of ['layerNorm', 'layerNormBackward', 'softmax', 'softmaxBackward', 'attention', 'attentionBackward', 'attentionCached', 'adamw', 'gradNorm', 'gradClip']) {
      expect(() => raw[name](undefined)).toThrow(/options object/);
      expect(() => raw[name]({})).toThrow(/`/);
    }
  });
});
