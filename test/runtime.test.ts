import { spawnSync } from 'child_process';
import * as path from 'path';
import { addonCandidates, gelu, nativeInfo, NativeAddonNotFoundError, setNumThreads, setSimdLevel } from '../src/native';
import { Rng } from './helpers/random';

describe('native runtime', () => {
  afterAll(() => {
    setNumThreads(0);
    setSimdLevel('avx512');
  });

  it('reports version, SIMD path and threads', () => {
    const info = nativeInfo();
    expect(info.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(['portable', 'avx2+fma', 'avx512']).toContain(info.simd);
    expect(info.threads).toBeGreaterThanOrEqual(1);
    expect(typeof info.cudaCompiled).toBe('boolean');
  });

  it('resizes the thread pool and restores the default with 0', () => {
    expect(setNumThreads(3)).toBe(3);
    expect(nativeInfo().threads).toBe(3);
    const def = setNumThreads(0);
    expect(def).toBeGreaterThanOrEqual(1);
    expect(nativeInfo().threads).toBe(def);
  });

  it('gives bit-identical results for every thread count', () => {
    const x = new Rng(1).f32(100_001, 4);
    const outs = [1, 2, 3, 5].map((t) => {
      setNumThreads(t);
      return Buffer.from(gelu({ input: x }).buffer);
    });
    for (const o of outs) expect(o.equals(outs[0])).toBe(true);
  });

  it('caps the SIMD level to what the CPU has and reports it', () => {
    expect(setSimdLevel('portable')).toBe('portable');
    expect(nativeInfo().simd).toBe('portable');
    const best = setSimdLevel('avx512');
    const f = nativeInfo().cpuFeatures;
    expect(best).toBe(f.avx512f && f.avx512bw && f.avx512vl ? 'avx512' : f.avx2 && f.fma ? 'avx2+fma' : 'portable');
  });

  it('tries MEDGYM_ADDON first and explains how to build when nothing loads', () => {
    const prev = process.env.MEDGYM_ADDON;
    process.env.MEDGYM_ADDON = '/nowhere/medgym.node';
    try {
      expect(addonCandidates()[0]).toBe(path.resolve('/nowhere/medgym.node'));
    } finally {
      if (prev === undefined) delete process.env.MEDGYM_ADDON;
      else process.env.MEDGYM_ADDON = prev;
    }
    const err = new NativeAddonNotFoundError(['/a.node'], new Error('boom'));
    expect(err.message).toMatch(/npm run build:native/);
    expect(err.message).toMatch(/boom/);
  });

  it('`medgym doctor` prints the addon, CPU features, threads, CUDA and sharp', () => {
    const root = path.join(__dirname, '..');
    const res = spawnSync(process.execPath, [require.resolve('tsx/cli'), 'src/cli/main.ts', 'doctor'], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(res.status).toBe(0);
    expect(res.stdout).toMatch(/addon: found/);
    expect(res.stdout).toMatch(/cpu features: .*kernels use the/);
    expect(res.stdout).toMatch(/threads: \d+/);
    expect(res.stdout).toMatch(/cuda: /);
    expect(res.stdout).toMatch(/sharp: \d+\.\d+/);
    expect(res.stdout).toMatch(/architectures:\n  medgym-vlm: [^\n]+\n  qwen2_vl \(Qwen2VLForConditionalGeneration\): [^\n]+\n  qwen2_5_vl /);
  });
});
