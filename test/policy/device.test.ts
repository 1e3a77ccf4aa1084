// Where NativePolicy runs: `device` / `dtype` validation (in TS and in the addon), 'cuda' refused with
// the runtime's reason where no GPU can run the policy, 'auto' falling back to the CPU engine (bit for
// bit) with the reason, the train config / flags, and `medgym doctor`'s line. Every test asserts on
// either kind of machine: where the probe says a GPU can run the policy (a GPU session), the same
// tests check the GPU side instead (created there, outputs within 1e-4 of the CPU's).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { doctor } from '../../src/cli/doctor';
import { configFromFlags } from '../../src/cli/train';
import { nativeInfo } from '../../src/native';
import { nativePolicyFunctions, type RawPolicyConfig } from '../../src/native/policy';
import { describeDevice, NativePolicy, probeCuda, resolveDevice } from '../../src/policy';
import { IMAGE_ID } from '../../src/tokenizer';
import { parseTrainConfig } from '../../src/train/config';
import { expectRejects, expectThrows } from '../helpers/errors';
import { Rng } from '../helpers/random';
import { TEST_CONFIG, mixedBatch, randomizeWeights } from './common';

const probe = probeCuda();
const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const RAW: RawPolicyConfig = { vocabSize: 268, dModel: 32, nLayer: 1, nHead: 4, maxSeq: 32, patch: 8, imageSize: 16, channels: 3, imageId: IMAGE_ID };

/** Forward + backward of one batch: logp per sequence and the gradient of every tensor. */
async function run(p: NativePolicy): Promise<{ logp: Float32Array[]; grads: Map<string, Float32Array> }> {
  const batch = mixedBatch(new Rng(2), p.config.imageSize);
  const { logp } = await p.forward(batch, { requireGrad: true, temperature: 0.8 });
  await p.backward({ dlogp: logp.map((l) => l.map((_, k) => (k % 3) - 1)) });
  return { logp, grads: new Map(p.parameters().map((t) => [t.name, p.getGradient(t.name)])) };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('NativePolicy devices', () => {
  test('device and dtype are validated at the boundary, naming the option', async () => {
    expectThrows(() => NativePolicy.create(TEST_CONFIG, { device: 'gpu' as never }), 'RangeError', /`device` but received 'gpu'/);
    expectThrows(() => NativePolicy.create(TEST_CONFIG, { dtype: 'fp16' as never }), 'RangeError', /`dtype` but received 'fp16'/);
    expectThrows(() => NativePolicy.create(TEST_CONFIG, { device: 'cpu', dtype: 'bf16' }), 'RangeError', /'bf16' needs `device` 'cuda'/);
    expectThrows(() => resolveDevice({ device: 1 as never }), 'RangeError', /`device` but received 1/);
    await expectRejects(NativePolicy.createAsync(TEST_CONFIG, { dtype: 'half' as never }), 'RangeError', /`dtype`/);
    // load() checks the options before it reads the file
    await expectRejects(NativePolicy.load('/no/such/file.safetensors', { device: 'tpu' as never }), 'RangeError', /`device`/);
  });

  test('the addon validates device and dtype itself (raw calls)', () => {
    const fns = nativePolicyFunctions();
    expectThrows(() => fns.policyCreate({ ...RAW, device: 'tpu' as never }), 'TypeError', /policyCreate.*`device`.*'tpu'/);
    expectThrows(() => fns.policyCreate({ ...RAW, dtype: 'fp8' as never }), 'TypeError', /policyCreate.*`dtype`/);
    expectThrows(() => fns.policyCreate({ ...RAW, dtype: 'bf16' }), 'RangeError', /'bf16' needs `device` 'cuda'/);
  });

  test('the probe says whether CUDA is compiled in and why no GPU can run the policy', () => {
    expect(probe.compiled).toBe(nativeInfo().cudaCompiled);
    if (probe.usable) {
      expect(probe.reason).toBe('');
      expect(probe.name).toMatch(/\(sm_\d+\)$/);
    } else {
      expect(probe.reason.length).toBeGreaterThan(0);
      if (!probe.compiled) expect(probe.reason).toMatch(/built without CUDA.*medgym build --cuda/);
    }
    expect(doctor().lines.find((l) => l.startsWith('policy on the GPU: '))).toMatch(probe.usable ? /^policy on the GPU: yes, / : new RegExp(`^policy on the GPU: no .*${escape(probe.reason)}`));
  });

  test("'cuda' without a usable GPU throws the runtime's reason (a GPU session: runs there, within 1e-4 of the CPU)", async () => {
    if (!probe.usable) {
      const why = new RegExp(`device 'cuda': ${escape(probe.reason)}`);
      expectThrows(() => NativePolicy.create(TEST_CONFIG, { device: 'cuda' }), 'Error', why);
      await expectRejects(NativePolicy.createAsync(TEST_CONFIG, { device: 'cuda', dtype: 'bf16' }), 'Error', why);
      // the raw addon refuses before scheduling anything
      expectThrows(() => nativePolicyFunctions().policyCreate({ ...RAW, device: 'cuda' }), 'Error', why);
      return;
    }
    const cpu = NativePolicy.create(TEST_CONFIG, { seed: 3 });
    const gpu = NativePolicy.create(TEST_CONFIG, { seed: 3, device: 'cuda' });
    try {
      randomizeWeights(cpu, 8);
      randomizeWeights(gpu, 8);
      expect(gpu.device).toBe('cuda');
      expect(gpu.deviceInfo.name).toMatch(/^cuda:0 .*, fp32$/);
      const [a, b] = [await run(cpu), await run(gpu)];
      a.logp.forEach((l, i) => expect(maxAbsDiff(l, b.logp[i])).toBeLessThanOrEqual(1e-4));
      for (const [name, g] of a.grads) {
        const scale = Math.max(1e-30, ...Array.from(g, Math.abs));
        expect(maxAbsDiff(g, b.grads.get(name)!) / scale).toBeLessThanOrEqual(1e-4);
      }
    } finally {
      cpu.dispose();
      gpu.dispose();
    }
  });

  test("'auto' picks the GPU when it can run the policy, else the CPU engine (bit for bit), and says why", async () => {
    const cpu = NativePolicy.create(TEST_CONFIG, { seed: 6, device: 'cpu' });
    const auto = NativePolicy.create(TEST_CONFIG, { seed: 6, device: 'auto', dtype: 'bf16' });
    try {
      const info = auto.deviceInfo;
      expect(info.requested).toBe('auto');
      expect(auto.device).toBe(probe.usable ? 'cuda' : 'cpu');
      if (probe.usable) {
        expect(info.dtype).toBe('bf16');
        expect(info.name).toMatch(/^cuda:0 .*, bf16$/);
        expect(describeDevice(info)).toMatch(/\(device 'auto': a CUDA device can run it/);
        return;
      }
      expect(info).toEqual({ device: 'cpu', dtype: 'fp32', requested: 'auto', name: 'cpu', reason: `no usable CUDA device: ${probe.reason}; 'bf16' needs the GPU, so fp32` });
      expect(describeDevice(info)).toBe(`cpu (fp32) (device 'auto': ${info.reason})`);
      expect(cpu.deviceInfo).toEqual({ device: 'cpu', dtype: 'fp32', requested: 'cpu', name: 'cpu', reason: 'requested' });
      const [a, b] = [await run(cpu), await run(auto)];
      a.logp.forEach((l, i) => expect(Buffer.from(l.buffer, l.byteOffset, l.byteLength).equals(Buffer.from(b.logp[i].buffer, b.logp[i].byteOffset, b.logp[i].byteLength))).toBe(true));
      for (const [name, g] of a.grads) expect(maxAbsDiff(g, b.grads.get(name)!)).toBe(0);
    } finally {
      cpu.dispose();
      auto.dispose();
    }
  });

  test('load() takes the device too; a checkpoint means the same weights wherever it is loaded', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-device-'));
    const src = NativePolicy.create(TEST_CONFIG, { seed: 9 });
    try {
      randomizeWeights(src, 10);
      const file = path.join(dir, 'p.safetensors');
      await src.save(file);
      const loaded = await NativePolicy.load(file, { device: 'auto' });
      try {
        expect(loaded.device).toBe(probe.usable ? 'cuda' : 'cpu');
        for (const t of src.parameters()) expect(maxAbsDiff(loaded.getParameter(t.name), src.getParameter(t.name))).toBe(0);
      } finally {
        loaded.dispose();
      }
    } finally {
      src.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("`medgym train` config and flags: device 'cpu' (default) | 'cuda' | 'auto', dtype 'fp32' | 'bf16'", () => {
    expect(parseTrainConfig({}).device).toBe('cpu');
    expect(parseTrainConfig({}).dtype).toBe('fp32');
    expect(parseTrainConfig({ device: 'auto', dtype: 'bf16' })).toMatchObject({ device: 'auto', dtype: 'bf16' });
    expect(() => parseTrainConfig({ device: 'gpu' })).toThrow(/device/);
    expect(() => parseTrainConfig({ dtype: 'fp16' })).toThrow(/dtype/);
    expect(configFromFlags({ device: 'cuda', dtype: 'bf16' })).toMatchObject({ device: 'cuda', dtype: 'bf16' });
  });
});
