import {
  fusedLinearLogprob,
  fusedLinearLogprobAsync,
  fusedLinearLogprobBackward,
  fusedLinearLogprobBackwardAsync,
  fusedLinearLogprobForwardBackward,
  fusedLinearLogprobForwardBackwardAsync,
  fusedLinearLogprobPlan,
  fusedLinearLogprobWorkspaceBytes,
  loadNative,
} from '../src/native';
import { expectRejects, expectThrows } from './helpers/errors';
import { Rng } from './helpers/random';

type ErrName = 'TypeError' | 'RangeError';
const [N, d, V] = [4, 3, 10];
const rng = new Rng(1);
const good = () => ({
  h: rng.f32(N * d),
  W: rng.f32(V * d),
  targets: Int32Array.from([0, 9, -1, 4]),
  N,
  d,
  V,
});
const goodBackward = () => {
  const g = good();
  const f = fusedLinearLogprob(g);
  return { ...g, lse: f.lse, entropy: f.entropy, dlogp: rng.f32(N), dentropy: rng.f32(N), dh: new Float32Array(N * d), dW: new Float32Array(V * d) };
};
const detached = (n: number) => {
  const a = new Float32Array(n);
  structuredClone(a.buffer, { transfer: [a.buffer] });
  return a;
};
const nan = (n: number, at: number, v = Number.NaN) => {
  const a = new Float32Array(n);
  a[at] = v;
  return a;
};

type Bad = [string, Record<string, unknown>, string, ErrName];
// [label, fields to override, argument the message must name, error class]
const dimCases: Bad[] = [
  ['N missing', { N: undefined }, 'N', 'TypeError'],
  ['N negative', { N: -1 }, 'N', 'RangeError'],
  ['N fractional', { N: 1.5 }, 'N', 'TypeError'],
  ['N string', { N: '4' }, 'N', 'TypeError'],
  ['d zero', { d: 0 }, 'd', 'RangeError'],
  ['d NaN', { d: Number.NaN }, 'd', 'TypeError'],
  ['V zero', { V: 0 }, 'V', 'RangeError'],
  ['V too large for int32 ids', { V: 2 ** 31 }, 'V', 'RangeError'],
  ['N * d overflow', { N: 2 ** 31 - 1, d: 2 ** 31 - 1 }, 'h', 'RangeError'],
  ['h wrong type', { h: new Float64Array(N * d) }, 'h', 'TypeError'],
  ['h plain array', { h: Array(N * d).fill(0) }, 'h', 'TypeError'],
  ['h wrong length', { h: new Float32Array(N * d - 1) }, 'h', 'RangeError'],
  ['h detached', { h: detached(N * d) }, 'h', 'RangeError'],
  ['W wrong length', { W: new Float32Array(V * d + 1) }, 'W', 'RangeError'],
  ['W missing', { W: undefined }, 'W', 'TypeError'],
  ['targets wrong type', { targets: new Float32Array(N) }, 'targets', 'TypeError'],
  ['targets wrong length', { targets: new Int32Array(N + 1) }, 'targets', 'RangeError'],
  ['target = V', { targets: Int32Array.from([0, V, 0, 0]) }, 'targets', 'RangeError'],
  ['target = -2', { targets: Int32Array.from([0, -2, 0, 0]) }, 'targets', 'RangeError'],
  ['temperature 0', { temperature: 0 }, 'temperature', 'RangeError'],
  ['temperature negative', { temperature: -1 }, 'temperature', 'RangeError'],
  ['temperature NaN', { temperature: Number.NaN }, 'temperature', 'RangeError'],
  ['temperature Infinity', { temperature: Infinity }, 'temperature', 'RangeError'],
  ['temperature string', { temperature: '1' }, 'temperature', 'TypeError'],
  ['impl unknown', { impl: 'fast' }, 'impl', 'TypeError'],
  ['split unknown', { split: 'columns' }, 'split', 'TypeError'],
  ['split not a string', { split: 1 }, 'split', 'TypeError'],
];

describe('fusedLinearLogprob rejects bad input', () => {
  const forwardCases: Bad[] = [
    ...dimCases,
    ['logp wrong length', { logp: new Float32Array(N + 1) }, 'logp', 'RangeError'],
    ['entropy wrong type', { entropy: new Float64Array(N) }, 'entropy', 'TypeError'],
    ['lse detached', { lse: detached(N) }, 'lse', 'RangeError'],
  ];
  it.each(forwardCases)('%s', async (_label, override, name, cls) => {
    const args = { ...good(), ...override } as Parameters<typeof fusedLinearLogprob>[0];
    const re = new RegExp('`' + name + '`');
    expectThrows(() => fusedLinearLogprob(args), cls, re);
    await expectRejects(fusedLinearLogprobAsync(args), cls, re);
  });

  it('rejects an output that aliases an input or another output', async () => {
    const g = good();
    expectThrows(() => fusedLinearLogprob({ ...g, logp: g.h.subarray(0, N) }), 'RangeError', /`logp` overlaps the memory of `h`/);
    const buf = new Float32Array(N + 1);
    expectThrows(() => fusedLinearLogprob({ ...g, logp: buf.subarray(0, N), lse: buf.subarray(1) }), 'RangeError', /`lse`/);
    await expectRejects(fusedLinearLogprobAsync({ ...g, entropy: g.W.subarray(0, N) }), 'RangeError', /`entropy`/);
  });

  it('rejects a missing options object', async () => {
    const raw = loadNative() as unknown as Record<string, (...a: unknown[]) => unknown>;
    expectThrows(() => raw.fusedLinearLogprob(), 'TypeError', /options object/);
    expectThrows(() => raw.fusedLinearLogprob(42), 'TypeError', /options object/);
    expectThrows(() => raw.fusedLinearLogprobBackward([]), 'TypeError', /options object/);
    expectThrows(() => raw.fusedLinearLogprobWorkspaceBytes(null), 'TypeError', /options object/);
    await expectRejects(fusedLinearLogprobAsync(undefined as never), 'TypeError', /options object/);
    await expectRejects((async () => raw.fusedLinearLogprobBackwardAsync() as Promise<unknown>)(), 'TypeError', /options object/);
  });
});

describe('fusedLinearLogprobBackward rejects bad input', () => {
  const backwardCases: Bad[] = [
    ...dimCases,
    ['lse missing', { lse: undefined }, 'lse', 'TypeError'],
    ['lse wrong length', { lse: new Float32Array(N - 1) }, 'lse', 'RangeError'],
    ['lse NaN on an active row', { lse: nan(N, 1) }, 'lse', 'RangeError'],
    ['entropy wrong length', { entropy: new Float32Array(N + 2) }, 'entropy', 'RangeError'],
    ['entropy infinite', { entropy: nan(N, 0, Infinity) }, 'entropy', 'RangeError'],
    ['dlogp wrong type', { dlogp: new Int32Array(N) }, 'dlogp', 'TypeError'],
    ['dlogp NaN', { dlogp: nan(N, 3) }, 'dlogp', 'RangeError'],
    ['dentropy -Infinity', { dentropy: nan(N, 0, -Infinity) }, 'dentropy', 'RangeError'],
    ['dentropy detached', { dentropy: detached(N) }, 'dentropy', 'RangeError'],
    ['dh wrong length', { dh: new Float32Array(N * d + 1) }, 'dh', 'RangeError'],
    ['dh detached', { dh: detached(N * d) }, 'dh', 'RangeError'],
    ['dW wrong type', { dW: new Float64Array(V * d) }, 'dW', 'TypeError'],
    ['dW wrong length', { dW: new Float32Array(V) }, 'dW', 'RangeError'],
    ['accumulateDh not boolean', { accumulateDh: 1 }, 'accumulateDh', 'TypeError'],
    ['dh aliases h', { h: new Float32Array(N * d), dh: undefined, alias: 'dh=h' }, 'dh', 'RangeError'],
    ['dW aliases W', { alias: 'dW=W' }, 'dW', 'RangeError'],
  ];
  it.each(backwardCases)('%s', async (_label, override, name, cls) => {
    const base = goodBackward();
    const args = { ...base, ...override } as Parameters<typeof fusedLinearLogprobBackward>[0] & { alias?: string };
    if (args.alias === 'dh=h') args.dh = args.h;
    if (args.alias === 'dW=W') args.dW = args.W;
    const re = new RegExp('`' + name + '`');
    expectThrows(() => fusedLinearLogprobBackward(args), cls, re);
    await expectRejects(fusedLinearLogprobBackwardAsync(args), cls, re);
  });

  it('accepts NaN in lse on an ignored row (it is never read) and leaves dW untouched on errors', () => {
    const base = goodBackward();
    const lse = Float32Array.from(base.lse);
    lse[2] = Number.NaN; // targets[2] = -1
    expect(() => fusedLinearLogprobBackward({ ...base, lse })).not.toThrow();
    const dW = new Float32Array(V * d).fill(7);
    expectThrows(() => fusedLinearLogprobBackward({ ...base, dW, dlogp: nan(N, 0) }), 'RangeError', /`dlogp`/);
    expect(dW.every((v) => v === 7)).toBe(true);
  });
});

describe('fusedLinearLogprobWorkspaceBytes rejects bad input', () => {
  const cases: Bad[] = [
    ['N negative', { N: -3 }, 'N', 'RangeError'],
    ['d fractional', { d: 2.5 }, 'd', 'TypeError'],
    ['V missing', { V: undefined }, 'V', 'TypeError'],
    ['threads zero', { threads: 0 }, 'threads', 'RangeError'],
    ['threads too many', { threads: 5000 }, 'threads', 'RangeError'],
    ['pass unknown', { pass: 'both' }, 'pass', 'TypeError'],
    ['split unknown', { split: 'auto ' }, 'split', 'TypeError'],
    ['recomputeEntropy not boolean', { recomputeEntropy: 'yes' }, 'recomputeEntropy', 'TypeError'],
  ];
  it.each(cases)('%s', (_label, override, name, cls) => {
    const args = { N, d, V, ...override } as Parameters<typeof fusedLinearLogprobWorkspaceBytes>[0];
    expectThrows(() => fusedLinearLogprobWorkspaceBytes(args), cls, new RegExp('`' + name + '`'));
  });
});

describe('fusedLinearLogprobForwardBackward rejects bad input', () => {
  const goodFwdBwd = () => {
    const { lse: _l, entropy: _e, ...rest } = goodBackward();
    return rest;
  };
  const cases: Bad[] = [
    ...dimCases.filter(([label]) => !label.startsWith('impl')),
    ['dlogp wrong length', { dlogp: new Float32Array(N + 1) }, 'dlogp', 'RangeError'],
    ['dlogp NaN', { dlogp: nan(N, 0) }, 'dlogp', 'RangeError'],
    ['dentropy Infinity', { dentropy: nan(N, 3, Infinity) }, 'dentropy', 'RangeError'],
    ['dentropy detached', { dentropy: detached(N) }, 'dentropy', 'RangeError'],
    ['dh wrong length', { dh: new Float32Array(N * d - 1) }, 'dh', 'RangeError'],
    ['dW wrong type', { dW: new Float64Array(V * d) }, 'dW', 'TypeError'],
    ['dW detached', { dW: detached(V * d) }, 'dW', 'RangeError'],
    ['logp wrong length', { logp: new Float32Array(N - 1) }, 'logp', 'RangeError'],
    ['entropy wrong type', { entropy: new Int32Array(N) }, 'entropy', 'TypeError'],
    ['lse detached', { lse: detached(N) }, 'lse', 'RangeError'],
    ['accumulateDh not boolean', { accumulateDh: 'no' }, 'accumulateDh', 'TypeError'],
    ['dh aliases h', { alias: 'dh=h' }, 'dh', 'RangeError'],
    ['lse aliases dlogp', { alias: 'lse=dlogp' }, 'lse', 'RangeError'],
  ];
  it.each(cases)('%s', async (_label, override, name, cls) => {
    const args = { ...goodFwdBwd(), ...override } as Parameters<typeof fusedLinearLogprobForwardBackward>[0] & {
      alias?: string;
    };
    if (args.alias === 'dh=h') args.dh = args.h;
    if (args.alias === 'lse=dlogp') args.lse = args.dlogp;
    const re = new RegExp('`' + name + '`');
    expectThrows(() => fusedLinearLogprobForwardBackward(args), cls, re);
    await expectRejects(fusedLinearLogprobForwardBackwardAsync(args), cls, re);
  });

  it('rejects a missing options object and leaves dW untouched on errors', async () => {
    const raw = loadNative() as unknown as Record<string, (...a: unknown[]) => unknown>;
    expectThrows(() => raw.fusedLinearLogprobForwardBackward(), 'TypeError', /options object/);
    await expectRejects(fusedLinearLogprobForwardBackwardAsync(null as never), 'TypeError', /options object/);
    const dW = new Float32Array(V * d).fill(5);
    expectThrows(() => fusedLinearLogprobForwardBackward({ ...goodFwdBwd(), dW, dlogp: nan(N, 1) }), 'RangeError', /`dlogp`/);
    expect(dW.every((v) => v === 5)).toBe(true);
  });
});

describe('fusedLinearLogprobPlan rejects bad input', () => {
  const cases: Bad[] = [
    ['N negative', { N: -1 }, 'N', 'RangeError'],
    ['d missing', { d: undefined }, 'd', 'TypeError'],
    ['V zero', { V: 0 }, 'V', 'RangeError'],
    ['V fractional', { V: 2.5 }, 'V', 'TypeError'],
    ['threads zero', { threads: 0 }, 'threads', 'RangeError'],
    ['threads not a number', { threads: '2' }, 'threads', 'TypeError'],
    ['split unknown', { split: 'both' }, 'split', 'TypeError'],
  ];
  it.each(cases)('%s', (_label, override, name, cls) => {
    const args = { N, d, V, ...override } as Parameters<typeof fusedLinearLogprobPlan>[0];
    expectThrows(() => fusedLinearLogprobPlan(args), cls, new RegExp('`' + name + '`'));
  });
  it('rejects a missing options object', () => {
    const raw = loadNative() as unknown as Record<string, (...a: unknown[]) => unknown>;
    expectThrows(() => raw.fusedLinearLogprobPlan(7), 'TypeError', /options object/);
  });
});
