// The published package as a new user gets it: `npm pack`, then in a fresh project under the OS temp
// folder an offline `npm ci --ignore-scripts` of the tarball on a PATH with node and npm only (no
// compiler, no cmake, no nvcc). Checks: no install script, CommonJS and ESM imports of every public
// entry, internal modules unreachable, an example, a kernel call equal to the in-repo build, `tsc` of
// a consumer without @types/node, the one-line error with the prebuilt removed, and MEDGYM_BINARY.
// The prebuilt comes from `npm run build:prebuilt` (run by `npm test` before jest); dist/ from the
// repository's `npm ci` (rebuilt here when a source file is newer).
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { gemm } from '../../src/native';
import { platformTag } from '../../src/native/loader';

const root = path.join(__dirname, '..', '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  license?: string;
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
  bin: Record<string, string>;
  engines?: Record<string, string>;
};
const npmCli = process.env.npm_execpath?.endsWith('npm-cli.js')
  ? process.env.npm_execpath
  : path.join(path.dirname(fs.realpathSync(process.execPath)), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');

let work: string; // temp folder: tarball, bin/ (node and npm only), consumer/
let consumer: string;
let env: NodeJS.ProcessEnv; // PATH without a compiler, no medgym variables
const timings: Record<string, number> = {};

function newest(dir: string): number {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : fs.statSync(p).mtimeMs);
  }
  return t;
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd: opts.cwd ?? consumer, env: opts.env ?? env, encoding: 'utf8', input: opts.input, maxBuffer: 64 << 20 });
}
const node = (args: string[], extraEnv: NodeJS.ProcessEnv = {}) => run(process.execPath, args, { env: { ...env, ...extraEnv } });
const ok = (r: SpawnSyncReturns<string>): string => {
  if (r.status !== 0) throw new Error(`exit ${r.status}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
};

/** The consumer's lock: medgym from the tarball, its dependencies as the repository's lock pins them. */
function consumerLock(tarball: string): object {
  const repoLock = JSON.parse(fs.readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  const packages: Record<string, unknown> = {
    '': { name: 'consumer', version: '1.0.0', dependencies: { medgym: `file:${tarball}` } },
    'node_modules/medgym': {
      version: pkg.version,
      resolved: `file:${tarball}`,
      integrity: `sha512-${crypto.createHash('sha512').update(fs.readFileSync(path.join(consumer, tarball))).digest('base64')}`,
      license: pkg.license,
      dependencies: pkg.dependencies,
      bin: pkg.bin,
      engines: pkg.engines,
    },
  };
  for (const [k, v] of Object.entries(repoLock.packages)) if (k.startsWith('node_modules/') && !v.dev) packages[k] = v;
  return { name: 'consumer', version: '1.0.0', lockfileVersion: 3, requires: true, packages };
}

beforeAll(() => {
  const prebuilt = path.join(root, 'prebuilds', platformTag(), 'medgym.node');
  if (!fs.existsSync(prebuilt)) execFileSync(process.execPath, [path.join(root, 'scripts', 'prebuild.js')], { cwd: root, stdio: 'inherit' });
  const distIndex = path.join(root, 'dist', 'index.mjs');
  if (!fs.existsSync(distIndex) || newest(path.join(root, 'src')) > fs.statSync(distIndex).mtimeMs) {
    spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
    execFileSync(process.execPath, [path.join(root, 'scripts', 'esm-entries.js')], { cwd: root, stdio: 'inherit' });
  }

  work = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-package-'));
  consumer = path.join(work, 'consumer');
  fs.mkdirSync(consumer);
  const bin = path.join(work, 'bin');
  fs.mkdirSync(bin);
  fs.symlinkSync(process.execPath, path.join(bin, 'node'));
  fs.symlinkSync(npmCli, path.join(bin, 'npm'));
  env = { HOME: process.env.HOME, PATH: bin, TMPDIR: os.tmpdir(), npm_config_update_notifier: 'false' };
  if (process.env.npm_config_cache) env.npm_config_cache = process.env.npm_config_cache;

  let t = performance.now();
  const packed = JSON.parse(ok(run(process.execPath, [npmCli, 'pack', '--ignore-scripts', '--json', '--pack-destination', consumer], { cwd: root, env: process.env })));
  timings.pack = performance.now() - t;
  const tarball = packed[0].filename as string;
  (globalThis as { packed?: unknown }).packed = packed[0];

  fs.writeFileSync(path.join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, dependencies: { medgym: `file:${tarball}` } }));
  fs.writeFileSync(path.join(consumer, 'package-lock.json'), JSON.stringify(consumerLock(tarball)));
  t = performance.now();
  ok(run(process.execPath, [npmCli, 'ci', '--offline', '--ignore-scripts', '--no-audit', '--no-fund']));
  timings.install = performance.now() - t;
}, 300_000);

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
  console.log(`package test: npm pack ${(timings.pack / 1000).toFixed(1)} s, offline install ${(timings.install / 1000).toFixed(1)} s`);
});

const installed = () => path.join(consumer, 'node_modules', 'medgym');

describe('the packed tarball', () => {
  it('ships dist, the CPU prebuilt, the native sources and examples; no tests, benches or build trees; no install script', () => {
    const files = ((globalThis as { packed?: { files: { path: string }[] } }).packed!.files ?? []).map((f) => f.path);
    expect(files).toContain(`prebuilds/${platformTag()}/medgym.node`);
    expect(files).toEqual(expect.arrayContaining(['dist/index.js', 'dist/index.mjs', 'dist/index.d.ts', 'dist/index.d.mts', 'dist/entries/kernels.mjs', 'CMakeLists.txt', 'examples/score-answers.mjs']));
    expect(files.filter((f) => /^(test|bench|build|src|python|docs)\/|^native\/tests\/|\/check\/|\.map$|^binding\.gyp$/.test(f))).toEqual([]);
    const manifest = JSON.parse(fs.readFileSync(path.join(installed(), 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
    for (const s of ['preinstall', 'install', 'postinstall']) expect(manifest.scripts?.[s]).toBeUndefined();
    expect(fs.existsSync(path.join(installed(), 'build'))).toBe(false); // nothing compiled
    expect(timings.install).toBeLessThan(60_000);
  });
});

describe('a consumer project', () => {
  it('requires every entry from CommonJS without loading the addon, and the first kernel call loads the prebuilt', () => {
    const out = ok(
      node([
        '-e',
        `const t0 = performance.now(); const m = require('medgym'); const t1 = performance.now();
         const k = require('medgym/kernels'), e = require('medgym/env'), p = require('medgym/policy'), r = require('medgym/rewards');
         if (k.nativeAddonPath() !== undefined) throw new Error('loaded on import');
         const t2 = performance.now(); k.nativeInfo(); const t3 = performance.now();
         console.log(JSON.stringify({ types: [typeof m.make, typeof m.kernels.gemm, typeof e.make, typeof p.NativePolicy, typeof r.composeRewards],
           addon: k.nativeAddonPath(), requireMs: t1 - t0, firstCallMs: t3 - t2 }));`,
      ]),
    );
    const res = JSON.parse(out) as { types: string[]; addon: string; requireMs: number; firstCallMs: number };
    expect(res.types).toEqual(['function', 'function', 'function', 'function', 'function']);
    expect(fs.realpathSync(res.addon)).toBe(fs.realpathSync(path.join(installed(), 'prebuilds', platformTag(), 'medgym.node')));
    console.log(`package test: require('medgym') ${res.requireMs.toFixed(0)} ms, first native call (load) ${res.firstCallMs.toFixed(1)} ms`);
  });

  it('imports every entry by name from ESM, and internal modules are unreachable', () => {
    const out = ok(
      node([
        '--input-type=module',
        '-e',
        `import medgym, { make, kernels, gradeAnswer, NativePolicy, runEpisode } from 'medgym';
         import { gemm, grpoLoss, nativeInfo } from 'medgym/kernels';
         import { make as make2, expertPolicy, tools } from 'medgym/env';
         import { POLICY_PRESETS, resolveDevice } from 'medgym/policy';
         import { composeRewards, gradeAnswer as grade2 } from 'medgym/rewards';
         console.log([make, kernels.gemm, gradeAnswer, NativePolicy, runEpisode, gemm, grpoLoss, nativeInfo, make2, expertPolicy, composeRewards, grade2, resolveDevice]
           .every((f) => typeof f === 'function') && typeof tools === 'object' && typeof POLICY_PRESETS === 'object' && medgym.make === make);`,
      ]),
    );
    expect(out.trim()).toBe('true');
    for (const internal of ['medgym/dist/native/loader', 'medgym/dist/index.js', 'medgym/src/index']) {
      const r = node(['-e', `try { require(${JSON.stringify(internal)}); console.log('reachable') } catch (e) { console.log(e.code) }`]);
      expect(r.stdout.trim()).toMatch(/ERR_PACKAGE_PATH_NOT_EXPORTED|MODULE_NOT_FOUND/);
    }
  });

  it('returns the same GEMM numbers as the in-repo build', () => {
    const M = 7, N = 5, K = 9;
    const A = Float32Array.from({ length: M * K }, (_, i) => Math.sin(i) * 3);
    const B = Float32Array.from({ length: K * N }, (_, i) => Math.cos(i * 0.7));
    const here = Array.from(gemm({ A, B, M, N, K }));
    const out = ok(
      node([
        '-e',
        `const { gemm } = require('medgym/kernels');
         const A = Float32Array.from({ length: ${M * K} }, (_, i) => Math.sin(i) * 3);
         const B = Float32Array.from({ length: ${K * N} }, (_, i) => Math.cos(i * 0.7));
         console.log(JSON.stringify(Array.from(gemm({ A, B, M: ${M}, N: ${N}, K: ${K} }))));`,
      ]),
    );
    expect(JSON.parse(out)).toEqual(here);
  });

  it('runs the rewards and kernel examples', () => {
    const ex = path.join(installed(), 'examples');
    const scored = ok(node([path.join(ex, 'score-answers.mjs')]));
    expect(JSON.parse(scored.trim().split('\n').pop()!)).toMatchObject({ episodes: 4, accuracy: 0.5 });
    const kernels = JSON.parse(ok(node([path.join(ex, 'grpo-kernels.cjs')])));
    expect(Number.isFinite(kernels.grpo.loss)).toBe(true);
    expect(kernels.fusedLinearLogprob.maxDiffVsReference).toBeLessThan(1e-4);
  });

  it('runs the scripted-episode example (views saved) and the kernel benchmark (`medgym bench-kernels --json`)', () => {
    const ex = path.join(installed(), 'examples');
    const views = path.join(work, 'views');
    const episode = JSON.parse(ok(node([path.join(ex, 'scripted-episode.mjs'), views])).trim().split('\n').pop()!) as { answer: { correct: boolean }; views: string[] };
    expect(episode.answer.correct).toBe(true);
    expect(episode.views.length).toBeGreaterThanOrEqual(2);
    for (const f of episode.views) expect(fs.readFileSync(f).subarray(0, 2).toString()).toMatch(/^P[56]$/);
    expect(ok(node([path.join(ex, 'bench-kernels.mjs')]))).toMatch(/gemm .* GFLOP\/s/);
    const bench = JSON.parse(ok(node([path.join(consumer, 'node_modules', '.bin', 'medgym'), 'bench-kernels', '--json', '--min-time', '20']))) as { bench: { name: string; ms: number }[] };
    expect(bench.bench.map((r) => r.name)).toEqual(['gemm', 'attention', 'logprob', 'fusedLinearLogprob', 'grpoLoss']);
    for (const r of bench.bench) expect(r.ms).toBeGreaterThan(0);
  });

  // No skipLibCheck: every .d.ts the imports reach is checked. node10 needs esModuleInterop for zod's own types.
  it('type-checks a consumer without @types/node (node16 ESM + CJS, and node10 through typesVersions)', () => {
    expect(fs.existsSync(path.join(consumer, 'node_modules', '@types', 'node'))).toBe(false);
    const src = `import { make, kernels, gradeAnswer, NativePolicy } from 'medgym';
import { gemm, type GemmArgs } from 'medgym/kernels';
import { composeRewards, type EpisodeSummary } from 'medgym/rewards';
import { runEpisode, expertPolicy, type StepResult } from 'medgym/env';
import { POLICY_PRESETS, type PolicyConfig } from 'medgym/policy';
const args: GemmArgs = { A: new Float32Array(4), B: new Float32Array(4), M: 2, N: 2, K: 2 };
const C: Float32Array = gemm(args);
const ep: EpisodeSummary = { answerStatus: 'ok', correct: true, wellFormed: true, toolCalls: 1, toolErrors: 0, zoomBoxes: [], truncated: false };
const total: number = composeRewards()(ep).total;
const step: Promise<StepResult> = runEpisode(make('MedVista-Synth-v0', { revealGroundTruth: true }), expertPolicy());
const cfg: PolicyConfig | undefined = undefined;
export const all = [C, total, step, cfg, kernels.logprob, gradeAnswer, NativePolicy, POLICY_PRESETS];
`;
    fs.mkdirSync(path.join(consumer, 'src'));
    fs.writeFileSync(path.join(consumer, 'src', 'cjs.ts'), src);
    fs.writeFileSync(path.join(consumer, 'src', 'esm.mts'), src);
    const base = { target: 'ES2022', strict: true, noEmit: true, types: [] as string[] };
    fs.writeFileSync(path.join(consumer, 'tsconfig.json'), JSON.stringify({ compilerOptions: { ...base, module: 'node16', moduleResolution: 'node16' }, include: ['src'] }));
    fs.writeFileSync(path.join(consumer, 'tsconfig.node10.json'), JSON.stringify({ compilerOptions: { ...base, module: 'commonjs', moduleResolution: 'node10', esModuleInterop: true }, files: ['src/cjs.ts'] }));
    const tsc = require.resolve('typescript/bin/tsc');
    for (const p of ['tsconfig.json', 'tsconfig.node10.json']) {
      const r = node([tsc, '-p', p]);
      expect(`${p}: ${r.stdout}${r.stderr}`.trim()).toBe(`${p}:`);
    }
  });

  it('throws one line naming the platform, what was tried and the fix when no binary loads', () => {
    const prebuilt = path.join(installed(), 'prebuilds', platformTag(), 'medgym.node');
    const aside = `${prebuilt}.aside`;
    fs.renameSync(prebuilt, aside);
    try {
      const r = node(['-e', `const m = require('medgym'); try { m.kernels.nativeInfo(); } catch (e) { console.log(JSON.stringify(e.message)); process.exit(3); }`]);
      expect(r.status).toBe(3);
      const msg = JSON.parse(r.stdout) as string;
      expect(msg).not.toMatch(/\n/);
      expect(msg).toMatch(new RegExp(`^medgym: no native addon loads on ${platformTag()}`));
      expect(msg).toContain(`${prebuilt} (not found)`);
      expect(msg).toContain('npx medgym build');

      // MEDGYM_BINARY: a build elsewhere on disk is used (a copy, as a user would point at one).
      const copy = path.join(work, 'elsewhere', 'medgym.node');
      fs.mkdirSync(path.dirname(copy));
      fs.copyFileSync(aside, copy);
      const used = ok(node(['-e', `const k = require('medgym/kernels'); k.nativeInfo(); console.log(k.nativeAddonPath())`], { MEDGYM_BINARY: copy }));
      expect(used.trim()).toBe(copy);
    } finally {
      fs.renameSync(aside, prebuilt);
    }
  });

  it('`npx medgym build` on a machine without CMake or a compiler says what to install, in one line', () => {
    const r = node([path.join(consumer, 'node_modules', '.bin', 'medgym'), 'build']);
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toMatch(/^medgym build: missing CMake .*; a C\+\+17 compiler/);
    expect(r.stderr.trim()).not.toMatch(/\n/);
  });

  it('probes a CUDA build in a child process first and skips it, with a warning, when the child fails', () => {
    // Not a loadable binary, but it carries the CUDA runtime's marker: the child fails, this process lives.
    const fake = path.join(work, 'fake-cuda', 'medgym.node');
    fs.mkdirSync(path.dirname(fake));
    fs.writeFileSync(fake, 'not an ELF file; cudaGetDeviceCount');
    const r = node(['-e', `const k = require('medgym/kernels'); k.nativeInfo(); console.log(k.nativeAddonPath())`], { MEDGYM_BINARY: fake });
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(path.join(installed(), 'prebuilds', platformTag(), 'medgym.node'));
    expect(r.stderr).toMatch(/medgym: skipping the CUDA build .*fake-cuda/);
  });
});
