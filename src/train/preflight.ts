// Everything a `medgym train` run needs, checked before any work (no policy built, no run folder
// written): the env id and its options, the dataset (its rows parsed, its image files found, the
// SFT pool and held-out set it can give), the device, the policy (preset, or the init checkpoint's
// header, config and tensor table), the output folder (writable, not another run's unless resuming)
// and the disk space checkpoints take. Every problem found is reported, one line each.
import * as fs from 'fs';
import * as path from 'path';
import { envSpec, make } from '../env';
import { nativePolicyFunctions } from '../native/policy';
import { POLICY_PRESETS, resolveDevice, type PolicyConfig } from '../policy';
import { openPolicyCheckpoint } from '../policy/checkpoint';
import { IMAGE_ID } from '../tokenizer';
import { hasCheckpoint } from './checkpoints';
import { DATASET_ENV_ID, type TrainConfig } from './config';
import { openRunItems, type RunItems } from './data';
import { envOptions, trainEnvExtra } from './envs';

export class PreflightError extends Error {
  /** Always 'PreflightError'. */
  override name = 'PreflightError';
  constructor(
    /** Every problem found before the run started, one sentence each. */
    readonly problems: string[],
  ) {
    super(`medgym train: ${problems.length} problem${problems.length > 1 ? 's' : ''} before starting:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** Bytes a run keeps on disk per parameter: 2 checkpoints (policy + AdamW m, v), sft + its optimizer, final, control. */
const BYTES_PER_PARAM = 4 * (2 * 3 + 3 + 1 + 1);
/** Room for metrics, trajectories and the report. */
const LOG_BYTES = 256 << 20;

export interface Preflight {
  /** What would stop the run, one line each (empty when it can start). */
  problems: string[];
  /** The run's items (the dataset opened once, here), when they could be opened. */
  items?: RunItems;
}

/** Checks everything the run needs; opens its items (a dataset is parsed and its image files found, not decoded). */
export async function preflight(cfg: TrainConfig, opts: { resume?: boolean } = {}): Promise<Preflight> {
  const problems: string[] = [];
  const check = async (what: string, fn: () => unknown): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      problems.push(`${what}: ${(err as Error).message}`);
    }
  };

  let envOk = false;
  await check('env.id', () => {
    const needs = envSpec(cfg.env.id).requiresDataset ?? false;
    if (needs && !cfg.env.dataset) throw new Error(`${cfg.env.id} reads a dataset: give env.dataset (--dataset <path>)`);
    if (!needs && cfg.env.dataset) throw new Error(`${cfg.env.id} is a synthetic task; a dataset is served by ${DATASET_ENV_ID} (leave env.id out)`);
    envOk = true;
  });
  if (envOk) await check('env.trainModalities', () => trainEnvExtra(cfg.env));
  let items: RunItems | undefined;
  await check(cfg.env.dataset ? 'env.dataset' : 'items', async () => {
    const opened = await openRunItems(cfg);
    opened.source.sftPool(cfg.sft.demoPool); // a pool larger than the train split says how many there are
    if (opened.source.evalSize === 0) {
      throw new RangeError(`${opened.resolved?.path}: no held-out (test) items to evaluate on: give rows a "split": "test", or raise the test share of env.dataset.fractions (now [${cfg.env.dataset?.fractions.join(', ')}])`);
    }
    items = opened;
  });
  await check('device', () => resolveDevice({ device: cfg.device, dtype: cfg.dtype }));

  let policy: PolicyConfig | undefined;
  if (cfg.policy.init) {
    const init = cfg.policy.init;
    await check('policy.init', async () => {
      const ckpt = await openPolicyCheckpoint(init);
      await ckpt.file.close();
      policy = ckpt.config;
    });
  } else policy = POLICY_PRESETS[cfg.policy.preset];

  let params = 0;
  if (policy) {
    const p = policy;
    await check('policy', () => (params = nativePolicyFunctions().policyConfigLayout({ ...p, imageId: IMAGE_ID }).reduce((a, t) => a + t.size, 0)));
    if (cfg.env.maxNewTokensPerTurn >= p.maxSeq) problems.push(`env.maxNewTokensPerTurn: ${cfg.env.maxNewTokensPerTurn} leaves no room for the prompt in the policy's ${p.maxSeq} positions`);
    // The env validates its own options at construction: build one (no item is generated).
    if (envOk && items) {
      const extra = items.envExtra;
      await check('env', () => make(cfg.env.id, envOptions(cfg.env, { imageTokens: (p.imageSize / p.patch) ** 2, maxSeq: p.maxSeq }, extra)).close());
    }
  }

  problems.push(...checkRunFolder(cfg.out, opts.resume ?? false, params * BYTES_PER_PARAM + LOG_BYTES));
  return { problems, items };
}

/** The run folder: a folder (or creatable), writable, not another run unless resuming, with `needBytes` free. */
export function checkRunFolder(out: string, resume: boolean, needBytes: number): string[] {
  const problems: string[] = [];
  const dir = path.resolve(out);
  let existing = dir;
  while (!fs.existsSync(existing) && path.dirname(existing) !== existing) existing = path.dirname(existing);
  if (!fs.statSync(existing).isDirectory()) {
    return [`out: ${existing} is a file, not a folder`];
  }
  try {
    fs.accessSync(existing, fs.constants.W_OK | fs.constants.X_OK);
  } catch {
    return [`out: ${existing} is not writable`];
  }
  if (existing === dir && !resume && (hasCheckpoint(dir) || fs.existsSync(path.join(dir, 'metrics.jsonl')))) {
    problems.push(`out: ${dir} already holds a run; continue it with --resume, or choose another --out (or delete it) to start anew`);
  }
  const fsStat = fs.statfsSync(existing);
  const free = Number(fsStat.bavail) * Number(fsStat.bsize);
  if (free < needBytes) {
    problems.push(`out: ${existing} has ${(free / 2 ** 20).toFixed(0)} MiB free; the run's checkpoints need about ${(needBytes / 2 ** 20).toFixed(0)} MiB`);
  }
  return problems;
}
