// `medgym eval --model <hf-dir>`: a pretrained Qwen2-VL / Qwen2.5-VL model evaluated on the env
// (Acc@1, Pass@K, with tools and with tool calls banned) through the same evaluation as a checkpoint:
// the env and dataset flags of `medgym train`, the eval settings of the config. `--policy <url> --model
// <name>` (./eval_policy.ts) evaluates a served model the same way: evalOnEnv is what both share.
import * as path from 'path';
import { writeFileAtomicSync } from '../io/atomic';
import { QwenEnvPolicy } from '../models/qwen2_vl/env_policy';
import type { MedGymOptions } from '../env';
import type { Policy } from '../policy';
import type { TrainConfig } from '../train/config';
import { openRunItems } from '../train/data';
import { evaluatePolicy } from '../train/evaluate_run';
import type { EvalResult } from '../eval';
import { configFromFlags, evalCommand, type EvalFlags } from './train';

export interface EvalAnyFlags extends Omit<EvalFlags, 'checkpoint'> {
  checkpoint?: string;
  /** A Hugging Face Qwen2-VL / Qwen2.5-VL model directory; with --policy, the served model's name. */
  model?: string;
  /** An OpenAI-compatible server's base URL (http://host:port/v1): evaluate its model --model. */
  policy?: string;
  /** --policy: auto | medgym-vlm | chat. */
  protocol?: string;
  /** --policy, chat protocol: openai | text. */
  toolFormat?: string;
  /** --policy: requests in flight at most. */
  concurrency?: string;
  /** --policy: seconds per request. */
  timeout?: string;
  /** --policy: the environment variable holding the API key (default OPENAI_API_KEY). */
  apiKeyEnv?: string;
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

const MODEL_ONLY = ['env', 'dataset', 'datasetKind', 'strict', 'viewSize', 'weightsDtype', 'decodeMath', 'policy', 'protocol', 'toolFormat', 'concurrency', 'timeout', 'apiKeyEnv'] as const;
/** Flags of a served model (--policy) only. */
export const POLICY_ONLY = ['protocol', 'toolFormat', 'concurrency', 'timeout', 'apiKeyEnv'] as const;
/** Flags of a local model directory only. */
const LOCAL_ONLY = ['weightsDtype', 'decodeMath'] as const;
const DTYPES = ['auto', 'bfloat16', 'float32'] as const;
const DECODE_MATH = ['exact', 'bf16'] as const;

export function oneOf<T extends string>(flag: string, v: string | undefined, choices: readonly T[], fallback: T): T {
  if (v === undefined) return fallback;
  if (!(choices as readonly string[]).includes(v)) throw new RangeError(`Expected one of ${choices.join(', ')} for --${flag} but received ${JSON.stringify(v)}`);
  return v as T;
}

/** `medgym eval`: --checkpoint (a medgym policy, its run's config) or --model (a pretrained model on the env of the flags). */
export async function evalAnyCommand(f: EvalAnyFlags): Promise<number> {
  if (f.policy !== undefined) {
    if (f.checkpoint !== undefined || f.model === undefined) throw new RangeError('medgym eval --policy <url> needs --model <name> (the served model), and no --checkpoint');
    const local = LOCAL_ONLY.filter((k) => f[k] !== undefined);
    if (local.length) throw new RangeError(`--${local.map(kebab).join(', --')}: for a local --model directory only (not with --policy)`);
    const { evalPolicyCommand } = await import('./eval_policy'); // the HTTP client loads only when asked for
    return evalPolicyCommand({ ...f, policy: f.policy, model: f.model });
  }
  if ((f.model === undefined) === (f.checkpoint === undefined)) throw new RangeError('medgym eval needs either --checkpoint <file> or --model <hf-dir>');
  if (f.checkpoint !== undefined) {
    const extra = MODEL_ONLY.filter((k) => f[k] !== undefined);
    if (extra.length) throw new RangeError(`--${extra.map(kebab).join(', --')}: for --model only (a checkpoint is evaluated on its run's env: use --config)`);
    return evalCommand({ ...f, checkpoint: f.checkpoint });
  }
  const served = POLICY_ONLY.filter((k) => f[k] !== undefined);
  if (served.length) throw new RangeError(`--${served.map(kebab).join(', --')}: for a served model only (--policy <url>)`);
  return evalModelCommand({ ...f, model: f.model! });
}

export const kebab = (s: string): string => s.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());

/** --view-size, checked. */
export function viewSizeFlag(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 10 || n > 4096) throw new RangeError(`Expected an integer in [10, 4096] for --view-size but received ${JSON.stringify(v)}`);
  return n;
}

/** A policy ready for the env of the flags, and what the env needs for it. */
export interface OpenedPolicy {
  policy: Policy;
  /** EvalResult.label. */
  label: string;
  /** Env options for this policy (view size, a lifted per-turn cap). */
  envExtra?: MedGymOptions;
  /** Printed on stderr before the evaluation. */
  notes?: string[];
}

/**
 * What every `medgym eval` of a model on the env of the flags does: the shared flags checked, the
 * config and items opened, the policy `open` gives evaluated (Acc@1, Pass@K, with and without tools)
 * and disposed, the EvalResult written to --out (or stdout) and a summary on stderr.
 */
export async function evalOnEnv(f: Omit<EvalAnyFlags, 'checkpoint'>, open: (cfg: TrainConfig) => Promise<OpenedPolicy>): Promise<number> {
  for (const [flag, v] of [['items', f.items], ['samples', f.samples], ['seed', f.seed]] as const) {
    if (v !== undefined && !Number.isInteger(Number(v))) throw new RangeError(`Expected an integer for --${flag} but received ${JSON.stringify(v)}`);
  }
  const parsed = configFromFlags({ config: f.config, env: f.env, dataset: f.dataset, datasetKind: f.datasetKind, strict: f.strict, seed: f.seed, evalItems: f.items, evalSamples: f.samples });
  const cfg = f.tools === false ? { ...parsed, eval: { ...parsed.eval, withoutTools: false } } : parsed;
  const items = await openRunItems(cfg);
  const { policy, label, envExtra, notes } = await open(cfg);
  try {
    for (const n of notes ?? []) process.stderr.write(`note: ${n}\n`);
    const r = await evaluatePolicy(policy, cfg, { ...items, envExtra: { ...items.envExtra, ...envExtra } }, label);
    const json = JSON.stringify(r, null, 2) + '\n';
    if (f.out) writeFileAtomicSync(f.out, json);
    else process.stdout.write(json);
    process.stderr.write(summary(r));
  } finally {
    policy.dispose();
  }
  return 0;
}

/**
 * The env caps a turn in its byte tokens; a policy in another token space caps it in its own (the
 * config's maxNewTokensPerTurn, passed to generate). Such a token is several bytes, so the env's cap is
 * lifted and the policy's holds.
 */
export const LIFT_TURN_CAP: MedGymOptions = { maxNewTokensPerTurn: Number.MAX_SAFE_INTEGER };

export async function evalModelCommand(f: EvalAnyFlags & { model: string }): Promise<number> {
  const viewSize = viewSizeFlag(f.viewSize);
  const dtype = oneOf('weights-dtype', f.weightsDtype, DTYPES, 'auto');
  const decodeMath = oneOf('decode-math', f.decodeMath, DECODE_MATH, 'exact');
  return evalOnEnv(f, async (cfg) => {
    const policy = await QwenEnvPolicy.load(f.model, { viewSize, load: { dtype, decodeMath } });
    const notes = policy.canBanToolCalls || !cfg.eval.withoutTools ? [] : ['this vocabulary has no <tool_call> token, so "without tools" cannot ban tool calls; the model may still write one'];
    return { policy, label: path.basename(path.resolve(f.model)), envExtra: { ...LIFT_TURN_CAP, ...(viewSize ? { viewSize } : {}) }, notes };
  });
}

function summary(r: EvalResult): string {
  const line = (m: EvalResult['withTools'], what: string): string =>
    `Acc@1 ${m.acc1.toFixed(3)} | Pass@1 ${m.passAtK[0].toFixed(3)} Pass@${r.samples} ${m.passAtK[r.samples - 1].toFixed(3)} (${what}, ${r.items} items)\n`;
  return `${r.label}\n` + line(r.withTools, 'with tools') + (r.withoutTools ? line(r.withoutTools, 'without tools') : '');
}
