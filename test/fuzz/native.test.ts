// Fuzz test of every native entry point (issue 17, "Hostile inputs"): each export of the addon, found
// at run time, is called with valid small options and then with one or two fields mutated (wrong
// types, wrong lengths, NaN/Inf, zero and huge sizes, detached / shared / resizable / offset buffers,
// aliased arrays, bad handles, hostile getters and Proxies, buffers detached while an async call runs)
// for a fixed number of seeded cases. Every call must return or throw a TypeError / RangeError / Error
// whose message starts with the function's name; none may crash or allocate from a claimed size.
// The cases run in a child process (test/fuzz/native_child.ts) so that a crash is reported with the
// case that caused it instead of killing jest.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadNative } from '../../src/native/loader';
import { expectRejects, expectThrows } from '../helpers/errors';
import { Rng } from '../helpers/random';

const ROOT = path.resolve(__dirname, '..', '..');
const CHILD = path.join(__dirname, 'native_child.ts');
const SEED = 17;
const CASES_PER_FUNCTION = 60;
/** Peak RSS of the child: a huge claimed size must be refused, never allocated. */
const MAX_RSS_MIB = 1536;
/** Exports that take no options: they cannot refuse anything. */
const NO_OPTIONS = ['info', 'policyCudaProbe'];

type Outcome = 'ok' | 'TypeError' | 'RangeError' | 'Error' | 'foreign';
interface Summary {
  cases: number;
  functions: number;
  missing: string[];
  perFn: Record<string, Record<Outcome, number>>;
  perKind: Record<string, Record<Outcome, number>>;
  samples: Record<string, string>;
  violations: string[];
  backticked: number;
  typedErrors: number;
  slowest: { ms: number; what: string };
  maxRssMiB: number;
  seconds: number;
}

describe('fuzz: native entry points', () => {
  let summary: Summary | undefined;
  let failure: string | undefined;

  beforeAll(() => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-fuzz-'));
    const logFile = path.join(dir, 'case.log');
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      MEDGYM_NUM_THREADS: '2',
      MEDGYM_MAX_ACTIVATION_BYTES: String(256 << 20),
      FUZZ_SEED: String(SEED),
      FUZZ_CASES: String(CASES_PER_FUNCTION),
      FUZZ_LOG: logFile,
    };
    delete env.FUZZ_ONLY;
    delete env.FUZZ_CASE;
    delete env.FUZZ_SKIP;
    delete env.FUZZ_SKIP_KINDS;
    const res = spawnSync(process.execPath, ['--expose-gc', '--max-old-space-size=256', '-r', require.resolve('tsx/cjs'), CHILD], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 120_000,
      maxBuffer: 64 << 20,
      env,
    });
    const logged = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').trimEnd().split('\n') : ['(no case log)'];
    const lastCase = logged[logged.length - 1];
    fs.rmSync(dir, { recursive: true, force: true });
    const line = (res.stdout ?? '').trimEnd().split('\n').pop() ?? '';
    if (res.error || res.signal || res.status !== 0 || !line.startsWith('{')) {
      failure =
        `the fuzz child ${res.signal ? `died of ${res.signal}` : res.error ? `failed: ${res.error.message}` : `exited with ${res.status}`} ` +
        `during case "${lastCase}"\n(a corrupted heap may only abort a few cases later; the cases before it:\n  ${logged.slice(-6, -1).join('\n  ')})\n` +
        `stdout tail: ${(res.stdout ?? '').slice(-2000)}\nstderr tail: ${(res.stderr ?? '').slice(-2000)}\n` +
        `replay one export or case: FUZZ_ONLY=<export> [FUZZ_CASE=<n>] FUZZ_SEED=${SEED} FUZZ_CASES=${CASES_PER_FUNCTION} ` +
        'node --expose-gc -r tsx/cjs test/fuzz/native_child.ts';
      return;
    }
    const parsed = JSON.parse(line) as Summary & { fatal?: string };
    if (parsed.fatal) failure = `the fuzz child failed: ${parsed.fatal}`;
    else summary = parsed;
  });

  const get = (): Summary => {
    if (failure || !summary) throw new Error(failure ?? 'no summary');
    return summary;
  };

  test('runs every case without crashing', () => {
    const s = get();
    expect(s.cases).toBeGreaterThanOrEqual(s.functions * CASES_PER_FUNCTION);
  });

  test('every export has a generator of valid options (a new export must get one in native_child.ts)', () => {
    const s = get();
    expect(s.missing).toEqual([]);
    expect(s.functions).toBeGreaterThanOrEqual(80);
    expect(Object.keys(s.perFn).length).toBe(s.functions);
  });

  test('every call returns or throws a TypeError / RangeError / Error named after the function', () => {
    const s = get();
    if (s.violations.length) throw new Error(`${s.violations.length} violations:\n${s.violations.slice(0, 20).join('\n')}`);
    // Most typed errors name the argument they are about (`name`); the rest are about state or the options object.
    expect(s.backticked / s.typedErrors).toBeGreaterThan(0.8);
  });

  test('is not vacuous: every export accepts valid options and refuses bad ones', () => {
    const s = get();
    for (const [name, t] of Object.entries(s.perFn)) {
      const total = t.ok + t.TypeError + t.RangeError + t.Error + t.foreign;
      expect({ name, called: total }).toEqual({ name, called: CASES_PER_FUNCTION });
      expect({ name, accepted: t.ok > 0 }).toEqual({ name, accepted: true });
      if (!NO_OPTIONS.includes(name)) expect({ name, refused: t.TypeError + t.RangeError > 0 }).toEqual({ name, refused: true });
    }
    // Each mutation kind was exercised.
    for (const kind of ['typed array', 'number', 'wrong type', 'handle', 'getter detaches an array', 'detached while running', 'large arrays detached'])
      expect({ kind, seen: (s.perKind[kind] ? Object.values(s.perKind[kind]).reduce((a, b) => a + b, 0) : 0) > 0 }).toEqual({ kind, seen: true });
  });

  test(`stays under ${MAX_RSS_MIB} MiB of peak RSS (claimed sizes are refused, not allocated)`, () => {
    const s = get();
    expect(s.maxRssMiB).toBeLessThan(MAX_RSS_MIB);
    expect(s.slowest.ms).toBeLessThan(5000);
  });
});

// Async calls work on copies of their arrays (so that a buffer detached while they run cannot be
// freed under them): the results must still be those of the sync call, in place and aliased too.
describe('async calls on copies', () => {
  const addon = loadNative() as unknown as Record<string, (o: unknown) => unknown>;
  const rng = new Rng(5);

  test('in-place and aliased async calls give the sync results', async () => {
    const x = rng.f32(33);
    const a = x.slice(), b = x.slice();
    addon.gelu({ input: a, out: a });
    await addon.geluAsync({ input: b, out: b });
    expect(b).toEqual(a);

    const p = rng.f32(20), g = rng.f32(20), m = rng.f32(20, 0.1), v = Float32Array.from(rng.f32(20), Math.abs);
    const s1 = [p, g, m, v].map((t) => t.slice()), s2 = [p, g, m, v].map((t) => t.slice());
    addon.adamw({ param: s1[0], grad: s1[1], m: s1[2], v: s1[3], lr: 0.01, step: 3 });
    await addon.adamwAsync({ param: s2[0], grad: s2[1], m: s2[2], v: s2[3], lr: 0.01, step: 3 });
    expect(s2).toEqual(s1);

    // Disjoint views of one buffer, and an output inside an input's buffer.
    const buf = rng.f32(40);
    const c1 = buf.slice(), c2 = buf.slice();
    addon.softmax({ N: 2, C: 5, input: c1.subarray(0, 10), out: c1.subarray(20, 30) });
    await addon.softmaxAsync({ N: 2, C: 5, input: c2.subarray(0, 10), out: c2.subarray(20, 30) });
    expect(c2).toEqual(c1);
    const grads1 = [rng.f32(5, 3), rng.f32(7, 3)], grads2 = grads1.map((t) => t.slice());
    const r1 = addon.gradClip({ grads: grads1, maxNorm: 1 });
    const r2 = await addon.gradClipAsync({ grads: grads2, maxNorm: 1 });
    expect(r2).toEqual(r1);
    expect(grads2).toEqual(grads1);
  });

  test('arrays that overlap in part are refused by async calls; detached outputs reject', async () => {
    const buf = new Float32Array(12);
    await expectRejects(Promise.resolve().then(() => addon.geluAsync({ input: buf.subarray(0, 8), out: buf.subarray(4, 12) })), 'RangeError', /^gelu: `out` overlaps `input` in part/);
    const out = new Float32Array(64);
    const p = addon.geluAsync({ input: new Float32Array(64), out }) as Promise<unknown>;
    structuredClone(out.buffer, { transfer: [out.buffer] });
    await expectRejects(p, 'Error', /^gelu: `out` was detached, transferred or resized while the call ran/);
    // Sync: a getter that detaches an array read before is caught before the kernel runs.
    const input = new Float32Array(16);
    const o = { input, get out() { structuredClone(input.buffer, { transfer: [input.buffer] }); return new Float32Array(16); } };
    expectThrows(() => addon.gelu(o), 'RangeError', /^gelu: `input` was detached, transferred or resized while the options were read/);
  });
});
