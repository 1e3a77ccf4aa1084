// `medgym eval --model <hf-dir>`: a pretrained Qwen2-VL / Qwen2.5-VL model evaluated on the env
// (Acc@1, Pass@K, with tools and with tool calls banned) through the same evaluation as a checkpoint:
// the env and dataset flags of `medgym train`, the eval settings of the config.
import * as fs from 'fs';
import * as path from 'path';
import { writeFileAtomicSync } from '../io/atomic';
import { QwenEnvPolicy } from '../models/qwen2_vl/env_policy';
import { openRunItems } from '../train/data';
import { evaluatePolicy } from '../train/evaluate_run';
import type { EvalResult } from '../eval';
import { configFromFlags, evalCommand, type EvalFlags } from './train';

export interface EvalAnyFlags extends Omit<EvalFlags, 'checkpoint'> {
  checkpoint?: string;
  /** A Hugging Face Qwen2-VL / Qwen2.5-VL model directory. */
  model?: string;
  env?: string;
  dataset?: string;
  datasetKind?: string;
  strict?: boolean;
  /** Env view side in pixels (default the env's, 64); the policy's imageTokens follow it. */
  viewSize?: string;
  /** auto | bfloat16 | float32 (QwenLoadOptions.dtype). */
  weightsDtype?: string;
  /** exact | bf16 (QwenLoadOptions.decodeMath). */
  decodeMath?: string;
}

const MODEL_ONLY = ['env', 'dataset', 'datasetKind', 'strict', 'viewSize', 'weightsDtype', 'decodeMath'] as const;
const DTYPES = ['auto', 'bfloat16', 'float32'] as const;
const DECODE_MATH = ['exact', 'bf16'] as const;

function oneOf<T extends string>(flag: string, v: string | undefined, choices: readonly T[], fallback: T): T {
  if (v === undefined) return fallback;
  if (!(choices as readonly string[]).includes(v)) throw new RangeError(`Expected one of ${choices.join(', ')} for --${flag} but received ${JSON.stringify(v)}`);
  return v as T;
}

/** `medgym eval`: --checkpoint (a medgym policy, its run's config) or --model (a pretrained model on the env of the flags). */
export async function evalAnyCommand(f: EvalAnyFlags): Promise<number> {
  if ((f.model === undefined) === (f.checkpoint === undefined)) throw new RangeError('medgym eval needs either --checkpoint <file> or --model <hf-dir>');
  if (f.checkpoint !== undefined) {
    const extra = MODEL_ONLY.filter((k) => f[k] !== undefined);
    if (extra.length) throw new RangeError(`--${extra.map(kebab).join(', --')}: for --model only (a checkpoint is evaluated on its run's env: use --config)`);
    return evalCommand({ ...f, checkpoint: f.checkpoint });
  }
  return evalModelCommand({ ...f, model: f.model! });
}

const kebab = (s: string): string => s.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());

export async function evalModelCommand(f: EvalAnyFlags & { model: string }): Promise<number> {
  let viewSize: number | undefined;
  if (f.viewSize !== undefined) {
    viewSize = Number(f.viewSize);
    if (!Number.isInteger(viewSize) || viewSize < 10 || viewSize > 4096) throw new RangeError(`Expected an integer in [10, 4096] for --view-size but received ${JSON.stringify(f.viewSize)}`);
  }
  const dtype = oneOf('weights-dtype', f.weightsDtype, DTYPES, 'auto');
  const decodeMath = oneOf('decode-math', f.decodeMath, DECODE_MATH, 'exact');
  for (const [flag, v] of [['items', f.items], ['samples', f.samples], ['seed', f.seed]] as const) {
    if (v !== undefined && !Number.isInteger(Number(v))) throw new RangeError(`Expected an integer for --${flag} but received ${JSON.stringify(v)}`);
  }
  const parsed = configFromFlags({ config: f.config, env: f.env, dataset: f.dataset, datasetKind: f.datasetKind, strict: f.strict, seed: f.seed, evalItems: f.items, evalSamples: f.samples });
  const cfg = f.tools === false ? { ...parsed, eval: { ...parsed.eval, withoutTools: false } } : parsed;
  const items = await openRunItems(cfg);
  const policy = await QwenEnvPolicy.load(f.model, { viewSize, load: { dtype, decodeMath } });
  try {
    if (cfg.eval.withoutTools && !policy.canBanToolCalls) {
      process.stderr.write('note: this vocabulary has no <tool_call> token, so "without tools" cannot ban tool calls; the model may still write one\n');
    }
    // The env caps a turn in its byte tokens; the policy caps it in Qwen tokens (env.maxNewTokensPerTurn,
    // passed to generate). A Qwen token is several bytes, so the env's cap is lifted: the policy's holds.
    const envItems = { ...items, envExtra: { ...items.envExtra, maxNewTokensPerTurn: Number.MAX_SAFE_INTEGER, ...(viewSize ? { viewSize } : {}) } };
    const r = await evaluatePolicy(policy, cfg, envItems, path.basename(path.resolve(f.model)));
    const json = JSON.stringify(r, null, 2) + '\n';
    if (f.out) writeFileAtomicSync(f.out, json);
    else process.stdout.write(json);
    process.stderr.write(summary(r));
  } finally {
    policy.dispose();
  }
  return 0;
}

function summary(r: EvalResult): string {
  const line = (m: EvalResult['withTools'], what: string): string =>
    `Acc@1 ${m.acc1.toFixed(3)} | Pass@1 ${m.passAtK[0].toFixed(3)} Pass@${r.samples} ${m.passAtK[r.samples - 1].toFixed(3)} (${what}, ${r.items} items)\n`;
  return `${r.label}\n` + line(r.withTools, 'with tools') + (r.withoutTools ? line(r.withoutTools, 'without tools') : '');
}
