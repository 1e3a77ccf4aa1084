// `medgym train` / `medgym eval`: flags (over an optional config file) in, one call out.
import * as fs from 'fs';
import * as path from 'path';
import { writeFileAtomicSync } from '../io/atomic';
import { stringify as toYaml } from 'yaml';
import { mergeConfig, parseTrainConfig, readConfigFile, type TrainConfig } from '../train/config';
import { runTraining, RUN_FILES } from '../train/run';
import { openRunItems } from '../train/data';
import { evaluatePolicy } from '../train/evaluate_run';
import { NativePolicy } from '../policy';
import { writeReport } from '../report';

export interface TrainFlags {
  config?: string;
  out?: string;
  steps?: string;
  sftSteps?: string;
  preset?: string;
  env?: string;
  device?: string;
  dtype?: string;
  seed?: string;
  threads?: string;
  evalItems?: string;
  evalSamples?: string;
  trainModalities?: string;
  dataset?: string;
  datasetKind?: string;
  strict?: boolean;
  quick?: boolean;
  stopAfter?: string;
  resume?: boolean;
  report?: boolean;
  control?: boolean;
  progress?: boolean;
}

const int = (v: string | undefined, name: string): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new RangeError(`Expected an integer for --${name} but received ${JSON.stringify(v)}`);
  return n;
};

/** `--quick`: every phase in under a minute on a 2-core CPU, to try the pipeline (on new data). */
export const QUICK = {
  sft: { steps: 30, batchSize: 8, demoPool: 16, warmup: 3 },
  grpo: { steps: 6, promptsPerStep: 4, groupSize: 4, warmup: 1 },
  eval: { items: 12, samples: 4 },
  checkpointEvery: 1000,
  logEvery: 5,
};

/** File config (if any) under the flags; --resume without flags reuses the run's own config.json. */
export function configFromFlags(f: TrainFlags): TrainConfig {
  let base: unknown = f.config ? readConfigFile(f.config) : {};
  if (f.resume && !f.config && f.out && fs.existsSync(path.join(f.out, RUN_FILES.config))) base = readConfigFile(path.join(f.out, RUN_FILES.config));
  const flags = {
    out: f.out,
    seed: int(f.seed, 'seed'),
    device: f.device,
    dtype: f.dtype,
    threads: int(f.threads, 'threads'),
    stopAfter: int(f.stopAfter, 'stop-after'),
    report: f.report === false ? false : undefined,
    control: f.control === false ? false : undefined,
    progress: f.progress === false ? false : undefined,
    env: {
      id: f.env,
      trainModalities: f.trainModalities?.split(',').map((m) => m.trim()).filter(Boolean),
      dataset: f.dataset === undefined ? undefined : { path: f.dataset, kind: f.datasetKind, strict: f.strict || undefined },
    },
    policy: { preset: f.preset },
    sft: { steps: int(f.sftSteps, 'sft-steps') },
    grpo: { steps: int(f.steps, 'steps') },
    eval: { items: int(f.evalItems, 'eval-items'), samples: int(f.evalSamples, 'eval-samples') },
  };
  if (f.dataset === undefined && (f.datasetKind !== undefined || f.strict)) throw new RangeError('--dataset-kind and --strict need --dataset <path>');
  // --quick: the whole recipe in under a minute (a pipeline check, not a result), under the file and the flags.
  const merged = mergeConfig(f.quick ? mergeConfig(QUICK, base) : base, flags) as Record<string, unknown>;
  // A resumed run must not stop again at the same stopAfter unless asked.
  if (f.resume && f.stopAfter === undefined) merged.stopAfter = 0;
  return parseTrainConfig(merged);
}

export async function trainCommand(f: TrainFlags): Promise<number> {
  const cfg = configFromFlags(f);
  process.stderr.write(`medgym train — config (defaults filled; override with --config file.yaml or flags):\n${toYaml(cfg)}\n`);
  const r = await runTraining(cfg, { resume: f.resume });
  if (r.status === 'stopped') return 130;
  if (cfg.report) {
    const rep = await writeReport(r.dir);
    process.stderr.write(`report: ${rep.markdown}\n        ${rep.html}\n`);
  }
  process.stderr.write(`done: ${r.dir}\n`);
  return 0;
}

export interface EvalFlags {
  checkpoint: string;
  config?: string;
  items?: string;
  samples?: string;
  tools?: boolean;
  seed?: string;
  out?: string;
}

/** Evaluates a policy checkpoint alone; the env settings come from --config or the run's config.json beside it. */
export async function evalCommand(f: EvalFlags): Promise<number> {
  const runConfig = path.join(path.dirname(path.resolve(f.checkpoint)), RUN_FILES.config);
  const base = f.config ? readConfigFile(f.config) : fs.existsSync(runConfig) ? readConfigFile(runConfig) : {};
  const cfg = parseTrainConfig(mergeConfig(base, { seed: int(f.seed, 'seed'), eval: { items: int(f.items, 'items'), samples: int(f.samples, 'samples'), withoutTools: f.tools === false ? false : undefined } }));
  // The run's items: its dataset reopened (and checked unchanged), or the generator.
  const items = await openRunItems(cfg);
  const policy = await NativePolicy.load(f.checkpoint, { device: cfg.device, dtype: cfg.dtype });
  try {
    const r = await evaluatePolicy(policy, cfg, items, path.basename(f.checkpoint));
    const json = JSON.stringify(r, null, 2) + '\n';
    if (f.out) writeFileAtomicSync(f.out, json);
    else process.stdout.write(json);
    const w = r.withTools;
    process.stderr.write(`Acc@1 ${w.acc1.toFixed(3)} | Pass@1 ${w.passAtK[0].toFixed(3)} Pass@${r.samples} ${w.passAtK[r.samples - 1].toFixed(3)} (with tools, ${r.items} items)\n`);
  } finally {
    policy.dispose();
  }
  return 0;
}
