// The `medgym train` config: one zod schema, every field documented, defaults from RECIPE.md
// (a limited pool of annotated demonstrations for SFT, GRPO on many answer-only items at a learning
// rate ~10x below SFT's, one warmup and one decay per phase). A file (JSON/YAML) is merged under
// the CLI flags; parseTrainConfig validates the result and fills the defaults.
import * as fs from 'fs';
import * as path from 'path';
import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import { DATASET_KINDS } from '../data/open';
import { didYouMean } from '../util/did_you_mean';

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();
const share = z.number().min(0).max(1);
const lr = z.number().positive().finite();

/** The synthetic task trained on by default, and the env that serves a dataset from disk. */
export const DEFAULT_ENV_ID = 'MedVista-Synth-Lesion-Visible-v0';
export const DATASET_ENV_ID = 'MedGym-Dataset-v0';

/** A user's dataset on disk (src/data/open.ts); the run records what it opened (`resolved`). */
const Dataset = z.strictObject({
  /** A data.jsonl / manifest .csv / MedMNIST .npz, or a VQA-RAD / SLAKE / PMC-VQA / OmniMedVQA folder. */
  path: z.string().min(1),
  /** Guessed from the path when omitted. */
  kind: z.enum(DATASET_KINDS).optional(),
  /** SLAKE question language. */
  language: z.string().optional(),
  /** NIfTI volumes that do not say: the axis and slice of the 2-D view. */
  axis: z.union([z.literal(0), z.literal(1), z.literal(2)]).optional(),
  /** See `axis`: the slice index along it (default the middle one). */
  slice: nonNegInt.optional(),
  /** A bad row stops the run (default: skipped, counted and logged). */
  strict: z.boolean().default(false),
  /** [train, val, test] shares of the stable hash split, for items without a split of their own. */
  fractions: z.tuple([share, share, share]).default([0.8, 0.1, 0.1]),
  /** Train items without a finding box: answer-only demonstrations ('answer') or GRPO prompts only ('skip'). */
  withoutBox: z.enum(['answer', 'skip']).default('answer'),
  /** Written by the run when it opens the dataset (a resumed or evaluated run checks it is unchanged). */
  resolved: z
    .strictObject({
      /** Absolute path of what was opened. */
      path: z.string(),
      /** The dataset kind opened. */
      kind: z.enum(DATASET_KINDS),
      /** Items in the dataset (bad rows skipped). */
      size: nonNegInt,
      /** sha256 (hex) over the annotation files' bytes, in reading order. */
      sha256: z.string(),
      /** The annotation files read (absolute). */
      annotationFiles: z.array(z.string()),
    })
    .optional(),
});

const EnvFields = z.strictObject({
  /** Registered env id (`medgym envs`); default MedGym-Dataset-v0 with a dataset, else the synthetic task. */
  id: z.string(),
  /** Train and evaluate on a dataset from disk instead of the synthetic generator. */
  dataset: Dataset.optional(),
  /**
   * 'none' (no system text: a policy trained from scratch learns the protocol from SFT, and ~150 fewer
   * positions per episode make every step ~30% cheaper), 'short' (SHORT_SYSTEM_PROMPT, ~150 bytes),
   * 'default' (the env's), or literal text.
   */
  systemPrompt: z.string().default('none'),
  /** Assistant segments per episode. */
  maxTurns: posInt.default(4),
  /** Tokens the policy may write in one assistant segment. */
  maxNewTokensPerTurn: posInt.default(64),
  /** Generator seed of the synthetic items (train and eval items differ by index range, not by seed). */
  synthSeed: nonNegInt.default(0),
  /**
   * Train on these modalities only: SFT demonstrations and GRPO prompts are drawn from them, the
   * evaluations still cover every modality of the env (the report marks each seen/unseen; `medgym
   * matrix` assembles Med-R1's cross-modality matrix from such runs). Default: all. A dataset's
   * modalities are its own labels (`medgym data check` lists them).
   */
  trainModalities: z.array(z.string().min(1)).min(1).optional(),
  /** An answer before any successful tool call's output loses the format reward (the task needs a tool). */
  requireTool: z.boolean().default(false),
  /** Reward weights (SPEC §4; RECIPE: accuracy + 0.1 format). */
  rewards: z
    .strictObject({
      /** Weight of the accuracy reward (1 for a correct, valid answer). */
      accuracy: z.number().default(1),
      /** Weight of the format reward (1 for a well-formed episode with a gradable answer). */
      format: z.number().default(0.1),
      /** Weight of the tool reward (1 when a tool call succeeded and the answer is correct). */
      tool: z.number().default(0),
      /** Weight of the IoU reward (IoU of the best zoom box with the finding box). */
      iou: z.number().default(0),
    })
    .prefault({}),
});
// The env id's default depends on whether a dataset is given.
const Env = z.preprocess((v) => {
  if (!v || typeof v !== 'object' || Array.isArray(v) || (v as { id?: unknown }).id !== undefined) return v;
  return { ...v, id: (v as { dataset?: unknown }).dataset === undefined ? DEFAULT_ENV_ID : DATASET_ENV_ID };
}, EnvFields);

const Policy = z.strictObject({
  /** Model preset (docs/policy.md). tiny (1M) is the CPU default; small (11M) and base (87M) want more compute. */
  preset: z.enum(['tiny', 'small', 'base']).default('tiny'),
  /** Weight-init seed. */
  seed: nonNegInt.default(0),
  /** Start from this checkpoint (.safetensors) instead of a fresh init. */
  init: z.string().optional(),
});

const Schedule = {
  /** Linear warmup steps (once per phase). */
  warmup: nonNegInt,
  /** Cosine decay to lr * minLrRatio at the last step (once per phase). */
  minLrRatio: share,
  /** AdamW decoupled weight decay (2-D tensors only). */
  weightDecay: z.number().min(0),
  /** Global gradient-norm clip (0: off). */
  maxGradNorm: z.number().min(0),
};

const Sft = z.strictObject({
  /** Optimizer steps of the warm start (0 skips SFT). */
  steps: nonNegInt.default(700),
  /** Demonstrations per step. */
  batchSize: posInt.default(16),
  /** Peak learning rate (after warmup). */
  lr: lr.default(1e-3),
  /** Linear warmup steps (once per phase). */
  warmup: Schedule.warmup.default(20),
  /** Cosine decay to lr * minLrRatio at the last step (once per phase). */
  minLrRatio: Schedule.minLrRatio.default(0.1),
  /** AdamW decoupled weight decay (2-D tensors only). */
  weightDecay: Schedule.weightDecay.default(0.01),
  /** Global gradient-norm clip (0: off). */
  maxGradNorm: Schedule.maxGradNorm.default(1),
  /**
   * Annotated demonstrations in the pool (RECIPE's default situation: boxes scarce, answers plentiful).
   * At 64 SFT memorizes the pool and more SFT stops paying, which is where GRPO on fresh answer-only
   * items does (docs/training.md). 0 = a fresh demo per draw (unlimited, the upper reference).
   */
  demoPool: nonNegInt.default(64),
  /** Share of demonstrations that answer without any tool call. */
  noToolShare: share.default(0),
  /** Share of demonstrations whose zoom goes to a random (usually wrong) cell before the right answer. */
  noisyShare: share.default(0),
  /** Add short <think> segments to demonstrations. */
  think: z.boolean().default(false),
});

const Grpo = z.strictObject({
  /** GRPO steps (batches of prompts); `--steps` sets this. 0 skips GRPO. */
  steps: nonNegInt.default(200),
  /** Prompts per step (answer-only items, never in the demo pool or the eval set). */
  promptsPerStep: posInt.default(8),
  /** G: sampled trajectories per prompt. */
  groupSize: z.number().int().min(2).default(8),
  /** Peak learning rate (after warmup). RECIPE: ~10x below SFT's or lower (at SFT's rate GRPO destroys a good policy). */
  lr: lr.default(5e-5),
  /** Linear warmup steps (once per phase). */
  warmup: Schedule.warmup.default(5),
  /** Cosine decay to lr * minLrRatio at the last step (once per phase). */
  minLrRatio: Schedule.minLrRatio.default(0.1),
  /** AdamW decoupled weight decay (2-D tensors only). */
  weightDecay: Schedule.weightDecay.default(0),
  /** Global gradient-norm clip (0: off). */
  maxGradNorm: Schedule.maxGradNorm.default(1),
  /** Optimizer passes over each batch. */
  epochs: posInt.default(1),
  /** Optimizer steps per epoch (the batch is split into this many mini-batches). */
  miniBatches: posInt.default(1),
  /** Sequences per forward/backward (gradients accumulate across micro-batches): bounds memory. */
  microBatchSize: posInt.default(32),
  /**
   * Compute each group's shared prompt once per micro-batch (exact: same loss and gradients to float
   * rounding; micro-batches then keep a prompt's trajectories together). false: every trajectory in full.
   */
  sharePrefix: z.boolean().default(true),
  /** Sampling temperature τ (the loss scores at the same τ). */
  temperature: z.number().positive().default(1),
  /** Nucleus sampling mass of the rollouts, in (0, 1] (1: off). */
  topP: z.number().gt(0).max(1).default(1),
  /** Drop groups whose rewards are all equal from the loss (they carry no advantage; always counted). */
  filterEqualRewardGroups: z.boolean().default(false),
  /** SPEC §2 loss options. beta > 0 loads the SFT policy as the frozen reference. */
  loss: z
    .strictObject({
      /** Lower clip range: rho is clipped below at 1 - epsLow. */
      epsLow: z.number().min(0).max(1).default(0.2),
      /** Upper clip range: rho is clipped above at 1 + epsHigh (DAPO uses 0.28). */
      epsHigh: z.number().min(0).default(0.2),
      /** Dual-clip constant c: for A < 0 the loss is capped at -c A (off when c <= 1). */
      dualClip: z.number().default(3),
      /** KL weight beta; > 0 scores the frozen SFT policy as the reference. */
      beta: z.number().min(0).default(0),
      /** KL estimator vs the reference (see GrpoKl). */
      kl: z.enum(['k1', 'k2', 'k3']).default('k3'),
      /** Loss aggregation over the generated tokens (SPEC §2; see GrpoLossAgg). */
      lossAgg: z.enum(['token-mean', 'seq-mean-token-mean', 'seq-mean-token-sum', 'seq-mean-token-sum-norm']).default('token-mean'),
      /** Advantage scaling: 'std' (r - mean) / (std + 1e-6), 'none' r - mean (Dr. GRPO). */
      scale: z.enum(['std', 'none']).default('std'),
      /** T_norm of 'seq-mean-token-sum-norm' (> 0); default the longest trajectory (in tokens) in the update. */
      tNorm: z.number().positive().optional(),
    })
    .prefault({}),
});

const Eval = z.strictObject({
  /** Held-out items (index range disjoint from training). */
  items: posInt.default(192),
  /** n samples per item for Pass@K (K = 1..n), at `temperature`. */
  samples: posInt.default(16),
  /** Sampling temperature τ of the Pass@K samples (Acc@1 is greedy). */
  temperature: z.number().positive().default(1),
  /** Evaluate with tools and with tool calls banned. */
  withoutTools: z.boolean().default(true),
  /** Evaluate the SFT policy before GRPO (RECIPE: its Pass@K predicts whether RL can help). */
  afterSft: z.boolean().default(true),
});

export const TrainConfigSchema = z
  .object({
    /** Run directory (metrics, trajectories, checkpoints, report). */
    out: z.string().default('runs/medgym-train'),
    /** Master seed: item indices, sampling streams (SPEC §7 key (seed, step, prompt, sample)), demo mix. */
    seed: nonNegInt.default(0),
    /** Where the policy runs: 'cpu', 'cuda' (fails with the reason when no GPU can run it) or 'auto' (the GPU when usable, else the CPU; the run logs which and why). */
    device: z.enum(['cpu', 'cuda', 'auto']).default('cpu'),
    /** GEMM precision on the GPU: 'fp32', or 'bf16' (fp32 accumulation and master weights). The CPU runs fp32 whatever this says. */
    dtype: z.enum(['fp32', 'bf16']).default('fp32'),
    /** Native threads (0: the addon's default). */
    threads: nonNegInt.default(0),
    /** The env episodes run in: id, dataset, prompt, budgets, rewards. */
    env: Env.prefault({}),
    /** The native policy trained: preset, init seed, starting checkpoint. */
    policy: Policy.prefault({}),
    /** The SFT warm start on the expert's demonstrations. */
    sft: Sft.prefault({}),
    /** The GRPO phase (SPEC §2). */
    grpo: Grpo.prefault({}),
    /** The held-out evaluations (SPEC §6). */
    eval: Eval.prefault({}),
    /**
     * Run the control after GRPO: the SFT policy (with its optimizer) trained further by SFT on the same
     * demo pool for GRPO's wall time, at the rate SFT ended with, then evaluated like the others.
     */
    control: z.boolean().default(true),
    /** Checkpoint every N optimizer steps of each phase (and at phase ends). */
    checkpointEvery: posInt.default(50),
    /** Write every trajectory of every Nth GRPO step to trajectories.jsonl. */
    trajectoriesEvery: posInt.default(1),
    /** Stop (checkpoint, exit as Ctrl-C does) after this many steps in this invocation; 0 = no limit. */
    stopAfter: nonNegInt.default(0),
    /** Consecutive non-finite steps (skipped) before the run stops. */
    maxBadSteps: posInt.default(3),
    /** Steps (as `${phase}:${step}`) whose loss is replaced by NaN: tests of the skip/stop logic only. */
    injectNan: z.array(z.string()).default([]),
    /** Write the report at the end. */
    report: z.boolean().default(true),
    /** Progress bars on a TTY (a log line every `logEvery` steps otherwise). */
    progress: z.boolean().default(true),
    /** Steps between progress log lines when not on a TTY. */
    logEvery: posInt.default(10),
  })
  .strict();

/**
 * The validated `medgym train` config (parseTrainConfig fills every default): the output type of
 * TrainConfigSchema, whose fields' doc comments are these.
 * @interface
 */
export type TrainConfig = z.infer<typeof TrainConfigSchema>;
/**
 * A config as written (file or code): fields with a default may be left out; parseTrainConfig fills them.
 * @interface
 */
export type TrainConfigInput = z.input<typeof TrainConfigSchema>;

/**
 * Validates and fills defaults; errors name every bad field by its full path ("sft.lr: Too small ...");
 * an unknown key anywhere is an error too, with the closest known key when one is near.
 */
export function parseTrainConfig(input: unknown): TrainConfig {
  const r = TrainConfigSchema.safeParse(input ?? {});
  if (!r.success) {
    const lines = r.error.issues.flatMap((i) => {
      const at = (k: PropertyKey): string => [...i.path, k].map(String).join('.');
      if (i.code === 'unrecognized_keys') return i.keys.map((k) => `  ${at(k)}: unknown key${didYouMean(k, keysAt(i.path))}`);
      return [`  ${i.path.map(String).join('.') || '(root)'}: ${i.message}`];
    });
    throw new RangeError(`Invalid train config:\n${lines.join('\n')}`);
  }
  return r.data;
}

/** The keys the schema knows at `path` (through default/prefault/optional wrappers). */
function keysAt(path: PropertyKey[]): string[] {
  let node: unknown = TrainConfigSchema;
  const unwrap = (n: unknown): unknown => {
    type ZodDef = { type: string; innerType?: unknown; out?: unknown };
    let def = (n as { _zod: { def: ZodDef } })._zod.def;
    while (def.type !== 'object' && (def.innerType !== undefined || def.out !== undefined)) {
      n = def.type === 'pipe' ? def.out : def.innerType;
      def = (n as { _zod: { def: ZodDef } })._zod.def;
    }
    return n;
  };
  for (const k of path) {
    const shape = (unwrap(node) as { shape?: Record<string, unknown> }).shape;
    if (!shape || !(String(k) in shape)) return [];
    node = shape[String(k)];
  }
  return Object.keys((unwrap(node) as { shape?: Record<string, unknown> }).shape ?? {});
}

/** Reads a JSON or YAML config file (by extension; .yml/.yaml are YAML). */
export function readConfigFile(file: string): unknown {
  const text = fs.readFileSync(file, 'utf8');
  const ext = path.extname(file).toLowerCase();
  try {
    return ext === '.yaml' || ext === '.yml' ? parseYaml(text) : JSON.parse(text);
  } catch (err) {
    throw new RangeError(`Cannot parse config ${file}: ${(err as Error).message}`);
  }
}

/** Deep merge of plain objects (arrays and scalars of `over` replace). */
export function mergeConfig(base: unknown, over: unknown): unknown {
  if (!isPlain(base) || !isPlain(over)) return over === undefined ? base : over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) if (v !== undefined) out[k] = mergeConfig(base[k], v);
  return out;
}
const isPlain = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** Learning rate at step (0-based) of a phase of `total` steps: linear warmup once, cosine decay once. */
export function lrAt(step: number, total: number, s: { lr: number; warmup: number; minLrRatio: number }): number {
  if (s.warmup > 0 && step < s.warmup) return (s.lr * (step + 1)) / s.warmup;
  const span = Math.max(1, total - s.warmup);
  const t = Math.min(1, Math.max(0, (step - s.warmup) / span));
  const min = s.lr * s.minLrRatio;
  return min + 0.5 * (s.lr - min) * (1 + Math.cos(Math.PI * t));
}
