// `medgym train` / `medgym eval`: flags (over an optional config file) in, one call out.
import * as fs from 'fs';
import * as path from 'path';
import { stringify as toYaml } from 'yaml';
import { mergeConfig, parseTrainConfig, readConfigFile, type TrainConfig } from '../train/config';
import { runTraining, RUN_FILES } from '../train/run';
import { makeTrainVec } from '../train/envs';
import { NativePolicy } from '../policy';
import { evaluate } from '../eval';
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
    env: { id: f.env, trainModalities: f.trainModalities?.split(',').map((m) => m.trim()).filter(Boolean) },
    policy: { preset: f.preset },
    sft: { steps: int(f.sftSteps, 'sft-steps') },
    grpo: { steps: int(f.steps, 'steps') },
    eval: { items: int(f.evalItems, 'eval-items'), samples: int(f.evalSamples, 'eval-samples') },
  };
  const merged = mergeConfig(base, flags) as Record<string, unknown>;
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
  const policy = await NativePolicy.load(f.checkpoint, { device: cfg.device, dtype: cfg.dtype });
  const vec = makeTrainVec(cfg.env, Math.max(cfg.eval.samples, Math.min(64, cfg.eval.items * cfg.eval.samples)), { imageTokens: policy.imageTokens, maxSeq: policy.config.maxSeq });
  try {
    const r = await evaluate(policy, vec, { label: path.basename(f.checkpoint), items: cfg.eval.items, samples: cfg.eval.samples, temperature: cfg.eval.temperature, withoutTools: cfg.eval.withoutTools, seed: cfg.seed + 0x5eed, maxNewTokensPerTurn: cfg.env.maxNewTokensPerTurn });
    const json = JSON.stringify(r, null, 2) + '\n';
    if (f.out) fs.writeFileSync(f.out, json);
    else process.stdout.write(json);
    const w = r.withTools;
    process.stderr.write(`Acc@1 ${w.acc1.toFixed(3)} | Pass@1 ${w.passAtK[0].toFixed(3)} Pass@${r.samples} ${w.passAtK[r.samples - 1].toFixed(3)} (with tools, ${r.items} items)\n`);
  } finally {
    vec.close();
    policy.dispose();
  }
  return 0;
}
