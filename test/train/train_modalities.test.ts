// env.trainModalities: validated by the config, narrows only the training envs' generator (the seed
// stays), refuses modalities the env does not have and dataset envs; --train-modalities sets it.
import { configFromFlags } from '../../src/cli/train';
import { generateQuestion } from '../../src/data/synth';
import { parseTrainConfig } from '../../src/train/config';
import { envOptions, trainEnvExtra } from '../../src/train/envs';
import { INDEX_BASE } from '../../src/rollout';

const dims = { imageTokens: 64, maxSeq: 1024 };

test('a subset narrows the training generator and keeps the synth seed; no subset changes nothing', () => {
  const cfg = parseTrainConfig({ env: { id: 'MedVista-Synth-v0', trainModalities: ['fundus', 'ct'], synthSeed: 7 } });
  const extra = trainEnvExtra(cfg.env);
  expect(extra).toEqual({ synth: { modalities: ['fundus', 'ct'] } });
  const o = envOptions(cfg.env, dims, { revealGroundTruth: true, ...extra });
  expect(o.synth).toEqual({ seed: 7, modalities: ['fundus', 'ct'] });
  expect(o.revealGroundTruth).toBe(true);
  const mods = new Set(Array.from({ length: 40 }, (_, i) => generateQuestion(o.synth!, INDEX_BASE.grpo + i).modality));
  expect([...mods].sort()).toEqual(['ct', 'fundus']);
  expect(trainEnvExtra(parseTrainConfig({}).env)).toEqual({});
  expect(envOptions(parseTrainConfig({}).env, dims).synth).toEqual({ seed: 0 });
});

test('bad subsets are refused with the field named', () => {
  // Modalities are free text in the config (a dataset has its own labels); the env checks them.
  expect(() => trainEnvExtra(parseTrainConfig({ env: { id: 'MedVista-Synth-v0', trainModalities: ['pet'] } }).env)).toThrow(/pet not among the modalities of MedVista-Synth-v0/);
  expect(() => parseTrainConfig({ env: { trainModalities: [''] } })).toThrow(/env\.trainModalities\.0/);
  expect(() => parseTrainConfig({ env: { trainModalities: [] } })).toThrow(/env\.trainModalities/);
  // The lesion task draws from xray, ultrasound and oct only.
  expect(() => trainEnvExtra(parseTrainConfig({ env: { id: 'MedVista-Synth-Lesion-v0', trainModalities: ['ct'] } }).env)).toThrow(/ct not among the modalities of MedVista-Synth-Lesion-v0/);
  expect(trainEnvExtra(parseTrainConfig({ env: { id: 'MedVista-Synth-Lesion-v0', trainModalities: ['oct'] } }).env)).toEqual({ synth: { modalities: ['oct'] } });
  expect(() => trainEnvExtra(parseTrainConfig({ env: { id: 'MedGym-Dataset-v0', trainModalities: ['ct'] } }).env)).toThrow(/needs a synthetic env/);
});

test('--train-modalities takes a comma-separated list', () => {
  expect(configFromFlags({ trainModalities: 'ct, mri' }).env.trainModalities).toEqual(['ct', 'mri']);
  expect(configFromFlags({}).env.trainModalities).toBeUndefined();
});
