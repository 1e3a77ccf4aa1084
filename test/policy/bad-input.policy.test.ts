// Bad input for every native policy entry point (raw addon functions) and the NativePolicy boundary:
// each throws TypeError/RangeError naming the argument; nothing crashes or reads out of bounds.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import { addonCandidates } from '../../src/native';
import { nativePolicyFunctions, type PolicyHandle } from '../../src/native/policy';
import { NativePolicy } from '../../src/policy';
import { encode, IMAGE_ID } from '../../src/tokenizer';
import { expectRejects, expectThrows } from '../helpers/errors';
import { Rng } from '../helpers/random';
import { TEST_CONFIG, randomView } from './common';

const fns = nativePolicyFunctions();
/** Raw native calls validate synchronously; as a promise, a throw becomes a rejection. */
const call = <T>(fn: () => Promise<T>): Promise<T> => Promise.resolve().then(fn);
const CFG = { vocabSize: 268, dModel: 16, nLayer: 1, nHead: 2, maxSeq: 32, patch: 8, imageSize: 16, channels: 3, imageId: IMAGE_ID };

describe('policy bad input (native entry points)', () => {
  const model = fns.policyCreate(CFG);
  const ok = { model, tokens: Int32Array.from([256, 65, 66]), lengths: Int32Array.from([3]), images: new Uint8Array(0), nImages: 0 };

  test('policyCreate', () => {
    expectThrows(() => fns.policyCreate({ ...CFG, dModel: 1.5 }), 'TypeError', /`dModel`/);
    expectThrows(() => fns.policyCreate({ ...CFG, nHead: 3 }), 'RangeError', /n_head/);
    expectThrows(() => fns.policyCreate({ ...CFG, channels: 2 }), 'RangeError', /channels/);
    expectThrows(() => fns.policyCreate({ ...CFG, imageSize: 12 }), 'RangeError', /image_size/);
    const { maxSeq, ...noSeq } = CFG;
    void maxSeq;
    expectThrows(() => fns.policyCreate(noSeq as typeof CFG), 'TypeError', /`maxSeq`/);
    expectThrows(() => fns.policyCreate({ ...CFG, seed: -1 }), 'RangeError', /`seed`/);
  });

  test('policyForward: handles, tokens, lengths, images, mask, temperature', async () => {
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, model: {} as PolicyHandle })), 'TypeError', /`model`/);
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, model: fns.sessionCreate({ model }) as unknown as PolicyHandle })), 'TypeError', /`model`/);
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, tokens: Float32Array.from([1, 2, 3]) as unknown as Int32Array })), 'TypeError', /`tokens`/);
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, tokens: Int32Array.from([256, 65]) })), 'RangeError', /`tokens`/);
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, tokens: Int32Array.from([256, 65, 268]) })), 'RangeError', /`tokens`/);
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, tokens: Int32Array.from([256, -1, 2]) })), 'RangeError', /`tokens`/);
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, lengths: Int32Array.from([-1, 4]) })), 'RangeError', /`lengths`/);
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, lengths: new Int32Array(0), tokens: new Int32Array(0) })), 'RangeError', /`lengths`/);
    // 2^17 empty sequences: refused by count, before per-sequence bookkeeping is allocated
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, lengths: new Int32Array(1 << 17), tokens: new Int32Array(0) })), 'RangeError', /at most 65536 sequences in `lengths`/);
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, tokens: Int32Array.from([256, IMAGE_ID, 66]) })), 'RangeError', /`images`/);
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, nImages: 1, images: new Uint8Array(10) })), 'RangeError', /`images`/);
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, nImages: 1.5 })), 'TypeError', /`nImages`/);
    const long = new Int32Array(33).fill(65);
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, tokens: long, lengths: Int32Array.from([33]) })), 'RangeError', /max_seq/);
    const imgs = Int32Array.from([256, ...new Array(8).fill(IMAGE_ID)]); // 1 + 8*4 = 33 positions
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, tokens: imgs, lengths: Int32Array.from([9]), nImages: 8, images: new Uint8Array(8 * 768) })), 'RangeError', /max_seq/);
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, mask: new Int32Array(2) })), 'RangeError', /`mask`/);
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, temperature: NaN })), 'RangeError', /`temperature`/);
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, temperature: 0 })), 'RangeError', /`temperature`/);
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, requireGrad: 1 as unknown as boolean })), 'TypeError', /`requireGrad`/);
    const det = Int32Array.from([256, 65, 66]);
    structuredClone(det.buffer, { transfer: [det.buffer] });
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, tokens: det })), 'RangeError', /`tokens`/);
  });

  test('policyBackward / policyCrossEntropy / policyStep / policyZeroGrad', async () => {
    await expectRejects(call(() => fns.policyBackwardAsync({ model, total: 3, dlogp: new Float32Array(3) })), 'RangeError', /requireGrad/);
    await fns.policyForwardAsync({ ...ok, requireGrad: true });
    await expectRejects(call(() => fns.policyBackwardAsync({ model, total: 3, dlogp: new Float32Array(2) })), 'RangeError', /`dlogp`/);
    await expectRejects(call(() => fns.policyBackwardAsync({ model, total: 3, dlogp: Float32Array.from([0, NaN, 0]) })), 'RangeError', /`dlogp`/);
    await expectRejects(call(() => fns.policyBackwardAsync({ model, total: 3, dlogp: new Float32Array(3), dentropy: new Float32Array(4) })), 'RangeError', /`dentropy`/);
    await expectRejects(call(() => fns.policyCrossEntropyAsync({ ...ok, reduction: 'avg' as 'mean' })), 'TypeError', /`reduction`/);
    await expectRejects(call(() => fns.policyCrossEntropyAsync({ ...ok, scale: Infinity })), 'RangeError', /`scale`/);
    await expectRejects(call(() => fns.policyStepAsync({ model, lr: -1 })), 'RangeError', /`lr`/);
    await expectRejects(call(() => fns.policyStepAsync({ model, beta1: 1 })), 'RangeError', /`beta1`/);
    await expectRejects(call(() => fns.policyStepAsync({ model, weightDecay: 'x' as unknown as number })), 'TypeError', /`weightDecay`/);
    await expectRejects(call(() => fns.policyZeroGradAsync({ model: 1 as unknown as PolicyHandle })), 'TypeError', /`model`/);
  });

  test('policyRead / policyWrite / policySetStep / policyLayout', () => {
    expectThrows(() => fns.policyRead({ model, which: 'weights' as 'params' }), 'TypeError', /`which`/);
    expectThrows(() => fns.policyRead({ model, which: 'params', offset: -1 }), 'RangeError', /`offset`/);
    expectThrows(() => fns.policyRead({ model, which: 'params', offset: 0, size: 1e12 }), 'RangeError', /`size`/);
    expectThrows(() => fns.policyWrite({ model, which: 'params', offset: 1e9, data: new Float32Array(1) }), 'RangeError', /`offset`/);
    expectThrows(() => fns.policyWrite({ model, which: 'params', offset: 0, data: Float32Array.from([NaN]) }), 'RangeError', /`data`/);
    const total = fns.policyLayout({ model }).reduce((a, t) => a + t.size, 0);
    expectThrows(() => fns.policyWrite({ model, which: 'params', offset: total - 1, data: new Float32Array(2) }), 'RangeError', /`data`/);
    expectThrows(() => fns.policySetStep({ model, step: -2 }), 'RangeError', /`step`/);
    expectThrows(() => fns.policyLayout({} as { model: PolicyHandle }), 'TypeError', /`model`/);
  });

  test('sessions: create, add, append, generate, tokens, release', async () => {
    expectThrows(() => fns.sessionCreate({ model: {} as PolicyHandle }), 'TypeError', /`model`/);
    expectThrows(() => fns.sessionCreate({ model, specials: [1 as unknown as string] }), 'TypeError', /`specials`/);
    const session = fns.sessionCreate({ model });
    const keys = { seeds: [0], steps: [0], promptIndices: [0], sampleIndices: [0] };
    const add = { session, tokens: ok.tokens, lengths: ok.lengths, images: ok.images, nImages: 0, ...keys };
    await expectRejects(call(() => fns.sessionAddAsync({ ...add, seeds: [0, 1] })), 'RangeError', /`seeds`/);
    await expectRejects(call(() => fns.sessionAddAsync({ ...add, steps: [-1] })), 'RangeError', /`steps`/);
    await expectRejects(call(() => fns.sessionAddAsync({ ...add, promptIndices: 3 as unknown as number[] })), 'TypeError', /`promptIndices`/);
    await expectRejects(call(() => fns.sessionAddAsync({ ...add, tokens: Int32Array.from([256, 999, 1]) })), 'RangeError', /`tokens`/);
    await expectRejects(call(() => fns.sessionAddAsync({ ...add, tokens: new Int32Array(0), lengths: Int32Array.from([0]) })), 'RangeError', /`tokens`/);
    await expectRejects(call(() => fns.sessionAddAsync({ ...add, session: model as unknown as typeof session })), 'TypeError', /`session`/);
    const [id] = await fns.sessionAddAsync(add);
    const gen = { session, ids: Int32Array.from([id]) };
    await expectRejects(call(() => fns.sessionGenerateAsync({ ...gen, ids: Int32Array.from([id + 5]) })), 'RangeError', /`ids`/);
    await expectRejects(call(() => fns.sessionGenerateAsync({ ...gen, ids: Int32Array.from([id, id]) })), 'RangeError', /`ids`/);
    await expectRejects(call(() => fns.sessionGenerateAsync({ ...gen, topP: 0 })), 'RangeError', /`topP`/);
    await expectRejects(call(() => fns.sessionGenerateAsync({ ...gen, topP: 1.5 })), 'RangeError', /`topP`/);
    await expectRejects(call(() => fns.sessionGenerateAsync({ ...gen, temperature: -1 })), 'RangeError', /`temperature`/);
    await expectRejects(call(() => fns.sessionGenerateAsync({ ...gen, maxNewTokens: -1 })), 'RangeError', /`maxNewTokens`/);
    await expectRejects(call(() => fns.sessionGenerateAsync({ ...gen, stopTokens: Int32Array.from([268]) })), 'RangeError', /`stopTokens`/);
    await expectRejects(call(() => fns.sessionGenerateAsync({ ...gen, bannedTokens: Int32Array.from([-1]) })), 'RangeError', /`bannedTokens`/);
    await expectRejects(call(() => fns.sessionGenerateAsync({ ...gen, stopStrings: [3 as unknown as string] })), 'TypeError', /`stopStrings`/);
    const appendOk = { session, ids: Int32Array.from([id]), tokens: Int32Array.from([65]), lengths: Int32Array.from([1]), images: new Uint8Array(0), nImages: 0 };
    await expectRejects(call(() => fns.sessionAppendAsync({ ...appendOk, ids: Int32Array.from([id, id]) })), 'RangeError', /`ids`/);
    await expectRejects(call(() => fns.sessionAppendAsync({ ...appendOk, tokens: Int32Array.from([IMAGE_ID]) })), 'RangeError', /`images`/);
    await expectRejects(call(() => fns.sessionAppendAsync({ ...appendOk, tokens: new Int32Array(40).fill(65), lengths: Int32Array.from([40]) })), 'RangeError', /max_seq/);
    expectThrows(() => fns.sessionTokens({ session, ids: Int32Array.from([77]) }), 'RangeError', /`ids`/);
    expectThrows(() => fns.sessionRelease({ session, ids: Int32Array.from([77]) }), 'RangeError', /`ids`/);
    const fork = { session, id, ...keys };
    await expectRejects(call(() => fns.sessionForkAsync({ ...fork, id: 77 })), 'RangeError', /sequence id 77 \(`id`\)/);
    await expectRejects(call(() => fns.sessionForkAsync({ ...fork, id: -1 })), 'RangeError', /`id`/);
    await expectRejects(call(() => fns.sessionForkAsync({ ...fork, id: 0.5 })), 'TypeError', /`id`/);
    await expectRejects(call(() => fns.sessionForkAsync({ ...fork, id: undefined as unknown as number })), 'TypeError', /`id`/);
    await expectRejects(call(() => fns.sessionForkAsync({ ...fork, seeds: [] })), 'RangeError', /`seeds`/);
    await expectRejects(call(() => fns.sessionForkAsync({ ...fork, seeds: new Array(4097).fill(0) })), 'RangeError', /`seeds`/);
    await expectRejects(call(() => fns.sessionForkAsync({ ...fork, seeds: 1 as unknown as number[] })), 'TypeError', /`seeds`/);
    await expectRejects(call(() => fns.sessionForkAsync({ ...fork, steps: [0, 0] })), 'RangeError', /`steps`/);
    await expectRejects(call(() => fns.sessionForkAsync({ ...fork, promptIndices: [1.5] })), 'RangeError', /`promptIndices`/);
    await expectRejects(call(() => fns.sessionForkAsync({ ...fork, sampleIndices: ['a' as unknown as number] })), 'RangeError', /`sampleIndices`/);
    await expectRejects(call(() => fns.sessionForkAsync({ ...fork, session: model as unknown as typeof session })), 'TypeError', /`session`/);
    const children = await fns.sessionForkAsync({ ...fork, seeds: [1, 2], steps: [0, 0], promptIndices: [0, 0], sampleIndices: [0, 1] });
    expect(children).toHaveLength(2);
    expect(new Set([id, ...children]).size).toBe(3);
    expect(Array.from(fns.sessionTokens({ session, ids: Int32Array.from([children[1]]) }))).toEqual(Array.from(ok.tokens));
    fns.sessionRelease({ session, ids: Int32Array.from(children) });
    await expectRejects(call(() => fns.sessionForkAsync({ ...fork, id: children[0] })), 'RangeError', /released sequence id .*`id`/);
    fns.sessionDispose({ session });
    await expectRejects(call(() => fns.sessionForkAsync(fork)), 'TypeError', /disposed/);
    expectThrows(() => fns.sessionTokens({ session, ids: Int32Array.from([id]) }), 'TypeError', /disposed/);
  });

  test('one heavy op per model: a concurrent second call is refused, not raced', async () => {
    const m = fns.policyCreate({ ...CFG, dModel: 256, nHead: 4, nLayer: 2, maxSeq: 1024 });
    const big = { ...ok, model: m, tokens: new Int32Array(1000).fill(65), lengths: Int32Array.from([1000]) };
    const first = fns.policyForwardAsync(big);
    expectThrows(() => fns.policyForwardAsync(big), 'Error', /busy/);
    await first;
    await fns.policyForwardAsync(big); // free again afterwards
    // dispose during an op: the op finishes on its own reference, later calls are refused
    const inFlight = fns.policyForwardAsync(big);
    fns.policyDispose({ model: m });
    expect((await inFlight).logp.length).toBe(1000);
    await expectRejects(call(() => fns.policyForwardAsync(big)), 'TypeError', /disposed/);
  });

  test('a batch whose activations exceed the memory limit is refused before anything is allocated', () => {
    // in a child process: the limit comes from the real environment (jest's process.env is a copy)
    const addonPath = addonCandidates().find((f) => fs.existsSync(f))!;
    const script = `
      const addon = require(${JSON.stringify(addonPath)});
      const model = addon.policyCreate(${JSON.stringify(CFG)});
      const base = { model, images: new Uint8Array(0), nImages: 0 };
      const big = { ...base, tokens: new Int32Array(30 * 32).fill(65), lengths: new Int32Array(30).fill(32) };
      const out = [];
      for (const f of [() => addon.policyForward({ ...big, requireGrad: true }), () => addon.policyCrossEntropy(big)]) {
        try { f(); out.push('ran'); } catch (e) { out.push(e.name + ': ' + e.message); }
      }
      addon.policyForward({ ...base, tokens: Int32Array.from([256, 65]), lengths: Int32Array.from([2]) });
      out.push('small ok');
      process.stdout.write(JSON.stringify(out));`;
    const res = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, MEDGYM_MAX_ACTIVATION_BYTES: String(1 << 20) } });
    expect(res.status).toBe(0);
    const out = JSON.parse(res.stdout) as string[];
    expect(out[0]).toMatch(/^RangeError: .*`tokens`.*micro-batches/);
    expect(out[1]).toMatch(/^RangeError: .*micro-batches/);
    expect(out[2]).toBe('small ok');
  });

  test('a disposed model is rejected by name', async () => {
    const m = fns.policyCreate(CFG);
    fns.policyDispose({ model: m });
    await expectRejects(call(() => fns.policyForwardAsync({ ...ok, model: m })), 'TypeError', /disposed/);
    expectThrows(() => fns.policyDispose({ model: 5 as unknown as PolicyHandle }), 'TypeError', /`model`/);
  });
});

describe('NativePolicy boundary', () => {
  const p = NativePolicy.create(TEST_CONFIG);
  const rng = new Rng(1);
  afterAll(() => p.dispose());

  test('create: presets and configs are validated', () => {
    expectThrows(() => NativePolicy.create('huge' as 'tiny'), 'RangeError', /`config`/);
    expectThrows(() => NativePolicy.create({ ...TEST_CONFIG, nHead: 5 }), 'RangeError', /nHead/);
    expectThrows(() => NativePolicy.create({ ...TEST_CONFIG, vocabSize: 300 }), 'RangeError', /vocabSize/);
    expectThrows(() => NativePolicy.create(TEST_CONFIG, { seed: -1 }), 'RangeError', /`seed`/);
  });

  test('views: size, channels, count, bytes are named', async () => {
    const tokens = [...encode('<|bos|>'), IMAGE_ID];
    await expectRejects(p.forward([{ tokens, images: [randomView(rng, 8)] }]), 'RangeError', /`batch\[0\]\.images\[0\]`/);
    await expectRejects(p.forward([{ tokens, images: [] }]), 'RangeError', /`batch\[0\]\.images`/);
    await expectRejects(p.forward([{ tokens, images: [{ ...randomView(rng, 16), channels: 4 as 3 }] }]), 'RangeError', /channel/);
    await expectRejects(p.forward([{ tokens, images: [{ ...randomView(rng, 16), data: new Uint8Array(5) }] }]), 'RangeError', /`batch\[0\]\.images\[0\]\.data`/);
    await expectRejects(p.forward([{ tokens: [256, 1.5] }]), 'RangeError', /`batch\[0\]\.tokens`/);
    await expectRejects(p.forward([{ tokens: [256, 65], mask: [1] }]), 'RangeError', /`batch\[0\]\.mask`/);
    await expectRejects(p.forward([]), 'RangeError', /`batch`/);
    await expectRejects(p.forward([{ tokens: [256] }], { temperature: -1 }), 'RangeError', /`temperature`/);
  });

  test('backward shapes must match the forward', async () => {
    await p.forward([{ tokens: [256, 65, 66] }], { requireGrad: true });
    await expectRejects(p.backward({ dlogp: [[0, 0]] }), 'RangeError', /`dlogp\[0\]`/);
    await p.forward([{ tokens: [256, 65, 66] }], { requireGrad: true });
    await expectRejects(p.backward({ dlogp: [[0, 0, 0], [0]] }), 'RangeError', /`dlogp`/);
    await p.forward([{ tokens: [256, 65, 66] }], { requireGrad: true });
    await expectRejects(p.backward({ dlogp: [[0, NaN, 0]] }), 'RangeError', /`dlogp\[0\]`/);
  });

  test('optimizer options, parameter access, sessions', async () => {
    await expectRejects(p.step({ lr: NaN }), 'TypeError', /`lr`/);
    await expectRejects(p.crossEntropyBackward([{ tokens: [256, 65] }], { reduction: 'x' as 'sum' }), 'RangeError', /`reduction`/);
    expectThrows(() => p.getParameter('h.9.ln_1.weight'), 'RangeError', /`name`/);
    expectThrows(() => p.setParameter('ln_f.bias', new Float32Array(3)), 'RangeError', /`data`/);
    const s = p.createSession();
    await expectRejects(s.add([{ tokens: [256], key: { sampleIndex: -1 } }]), 'RangeError', /`seqs\[0\]\.key\.sampleIndex`/);
    const [root] = await s.add([{ tokens: [256, 65] }]);
    await expectRejects(s.fork(root + 9, 2), 'RangeError', /`id`/);
    await expectRejects(s.fork(-1, 2), 'RangeError', /`id`/);
    await expectRejects(s.fork(root, 0), 'RangeError', /`n`/);
    await expectRejects(s.fork(root, 2.5), 'RangeError', /`n`/);
    await expectRejects(s.fork(root, 5000), 'RangeError', /`n`/);
    await expectRejects(s.fork(root, 2, [{}]), 'RangeError', /`keys`/);
    await expectRejects(s.fork(root, 2, [{}, { step: -3 }]), 'RangeError', /`keys\[1\]\.step`/);
    await expectRejects(s.fork(root, 1, [null as unknown as object]), 'TypeError', /`keys\[0\]`/);
    s.release([root]);
    await expectRejects(s.fork(root, 1), 'RangeError', /`id`/);
    await expectRejects(s.generate([0], { stopTokens: [999] }), 'RangeError', /`stopTokens`/);
    await expectRejects(s.generate([0], { stopStrings: [1 as unknown as string] }), 'TypeError', /`stopStrings`/);
    s.dispose();
    await expectRejects(p.saveOptimizer('/tmp/never.safetensors'), 'RangeError', /no optimizer state/);
  });
});
