// The train config: defaults by RECIPE, validation errors naming the field, files (JSON/YAML) under
// flags, and the learning-rate schedule (one warmup, one cosine decay).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { lrAt, mergeConfig, parseTrainConfig, readConfigFile } from '../../src/train/config';
import { configFromFlags } from '../../src/cli/train';

test('defaults follow RECIPE: scarce demo pool, GRPO lr ~10x below SFT, tiny CPU preset', () => {
  const c = parseTrainConfig({});
  expect(c.sft.demoPool).toBeGreaterThan(0);
  expect(c.sft.lr / c.grpo.lr).toBeGreaterThanOrEqual(5);
  expect(c.policy.preset).toBe('tiny');
  expect(c.grpo.loss).toEqual({ epsLow: 0.2, epsHigh: 0.2, dualClip: 3, beta: 0, kl: 'k3', lossAgg: 'token-mean', scale: 'std' });
  expect(c.eval.samples).toBe(16);
});

test('invalid fields are named; unknown top-level keys are refused', () => {
  expect(() => parseTrainConfig({ sft: { lr: -1 } })).toThrow(/sft\.lr/);
  expect(() => parseTrainConfig({ grpo: { groupSize: 1 } })).toThrow(/grpo\.groupSize/);
  expect(() => parseTrainConfig({ grpo: { loss: { lossAgg: 'mean' } } })).toThrow(/grpo\.loss\.lossAgg/);
  expect(() => parseTrainConfig({ policy: { preset: 'huge' } })).toThrow(/policy\.preset/);
  expect(() => parseTrainConfig({ stpes: 3 })).toThrow(/stpes|Unrecognized/);
  expect(() => parseTrainConfig({ sft: { noToolShare: 1.5 } })).toThrow(/sft\.noToolShare/);
});

test('an unknown key at any depth is refused by its full path, with the closest known key', () => {
  const err = (input: unknown): string => {
    try {
      parseTrainConfig(input);
    } catch (e) {
      return (e as Error).message;
    }
    throw new Error('accepted');
  };
  expect(err({ sede: 3 })).toMatch(/^ {2}sede: unknown key \(did you mean 'seed'\?\)$/m);
  expect(err({ env: { maxTurn: 3 } })).toMatch(/^ {2}env\.maxTurn: unknown key \(did you mean 'maxTurns'\?\)$/m);
  expect(err({ env: { rewards: { acuracy: 1 } } })).toMatch(/^ {2}env\.rewards\.acuracy: unknown key \(did you mean 'accuracy'\?\)$/m);
  expect(err({ grpo: { loss: { bta: 0.1 } } })).toMatch(/^ {2}grpo\.loss\.bta: unknown key \(did you mean 'beta'\?\)$/m);
  expect(err({ policy: { xyzzy: 1 } })).toMatch(/^ {2}policy\.xyzzy: unknown key$/m); // nothing close: no guess
  // every problem is listed, not only the first
  expect(err({ sft: { stps: 3 }, eval: { itmes: 3 } }).split('\n')).toHaveLength(3);
});

test('YAML and JSON files merge under the flags', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-cfg-'));
  const yml = path.join(dir, 'c.yaml');
  fs.writeFileSync(yml, 'seed: 7\nsft:\n  steps: 11\n  lr: 0.002\ngrpo:\n  steps: 5\n');
  const json = path.join(dir, 'c.json');
  fs.writeFileSync(json, JSON.stringify({ grpo: { promptsPerStep: 3 } }));
  expect(readConfigFile(json)).toEqual({ grpo: { promptsPerStep: 3 } });
  const c = configFromFlags({ config: yml, steps: '9', preset: 'small' });
  expect([c.seed, c.sft.steps, c.sft.lr, c.grpo.steps, c.policy.preset, c.sft.batchSize]).toEqual([7, 11, 0.002, 9, 'small', 16]);
  expect(() => configFromFlags({ steps: 'many' })).toThrow(/--steps/);
  const bad = path.join(dir, 'bad.yaml');
  fs.writeFileSync(bad, 'sft: [unclosed');
  expect(() => readConfigFile(bad)).toThrow(/Cannot parse config/);
  expect(mergeConfig({ a: { b: 1, c: 2 } }, { a: { c: 3 }, d: [1] })).toEqual({ a: { b: 1, c: 3 }, d: [1] });
  fs.rmSync(dir, { recursive: true, force: true });
});

test('lr schedule: linear warmup once, cosine to lr·minLrRatio once', () => {
  const s = { lr: 1, warmup: 10, minLrRatio: 0.1 };
  expect(lrAt(0, 100, s)).toBeCloseTo(0.1);
  expect(lrAt(9, 100, s)).toBeCloseTo(1);
  expect(lrAt(10, 100, s)).toBeCloseTo(1);
  expect(lrAt(100, 100, s)).toBeCloseTo(0.1);
  for (let t = 11; t <= 100; t++) expect(lrAt(t, 100, s)).toBeLessThanOrEqual(lrAt(t - 1, 100, s) + 1e-12);
});
