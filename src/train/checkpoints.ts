// Checkpoints of a `medgym train` run: each one a folder (policy, optimizer, state.json) written
// before `checkpoints/latest.json` moves to it; the two newest are kept. Resuming verifies what it
// loads (state schema, policy and optimizer files) and, when the newest checkpoint is damaged, says
// what is wrong and falls back to the newest one that verifies; it refuses only when none does.
import * as fs from 'fs';
import * as path from 'path';
import { z } from 'zod';
import { writeFileAtomic } from '../io/atomic';
import { NativePolicy, type DeviceOptions } from '../policy';

export const PHASES = ['sft', 'eval_sft', 'grpo', 'eval_final', 'control', 'eval_control', 'done'] as const;
export type Phase = (typeof PHASES)[number];

const nonNeg = z.number().finite().nonnegative();
const RunStateSchema = z.object({
  /** The phase the run is in (PHASES, in order). */
  phase: z.enum(PHASES),
  /** Next step of the phase (the data position: SFT batches and GRPO prompts are functions of it). */
  step: z.number().int().nonnegative(),
  /** Bytes of metrics.jsonl / trajectories.jsonl written when the checkpoint was taken (resume truncates to them). */
  metricsBytes: z.number().int().nonnegative(),
  /** See `metricsBytes`. */
  trajectoriesBytes: z.number().int().nonnegative(),
  /** Consecutive skipped (non-finite) steps. */
  badSteps: z.number().int().nonnegative(),
  /** Wall-clock seconds spent in earlier invocations. */
  elapsed: nonNeg,
  /** Seconds GRPO took (steps only, as the control's budget) and the control has spent so far. */
  grpoSeconds: nonNeg.optional(),
  /** See `grpoSeconds`. */
  controlSeconds: nonNeg.optional(),
});

/**
 * What a checkpoint records besides the weights and the optimizer.
 * @interface
 */
export type RunState = z.infer<typeof RunStateSchema>;

export const CHECKPOINTS_DIR = 'checkpoints';
export const LATEST = 'checkpoints/latest.json';
const POLICY = 'policy.safetensors';
const OPTIMIZER = 'optimizer.safetensors';
const STATE = 'state.json';

/** Folder name of a checkpoint: phase index, phase, step (sorts by age). */
export function checkpointName(state: RunState): string {
  return `${PHASES.indexOf(state.phase)}-${state.phase}-${String(state.step).padStart(6, '0')}`;
}

/** Writes a checkpoint of `policy` and `state` under `runDir`, moves latest.json to it, keeps the two newest. */
export async function saveCheckpoint(runDir: string, policy: NativePolicy, state: RunState): Promise<string> {
  const name = checkpointName(state);
  const cdir = path.join(runDir, CHECKPOINTS_DIR, name);
  fs.mkdirSync(cdir, { recursive: true });
  await policy.save(path.join(cdir, POLICY));
  await saveOptimizerIfAny(policy, path.join(cdir, OPTIMIZER));
  await writeFileAtomic(path.join(cdir, STATE), JSON.stringify(state, null, 2) + '\n');
  // The pointer moves last: a crash before this line leaves the previous checkpoint in force.
  await writeFileAtomic(path.join(runDir, LATEST), JSON.stringify({ dir: path.join(CHECKPOINTS_DIR, name), state }, null, 2) + '\n');
  for (const old of checkpointDirs(runDir).slice(2)) fs.rmSync(path.join(runDir, CHECKPOINTS_DIR, old), { recursive: true, force: true });
  return cdir;
}

/** The optimizer state, when a step has created one (a phase starts with a fresh optimizer). */
async function saveOptimizerIfAny(policy: NativePolicy, file: string): Promise<void> {
  if (policy.stepCount === 0) {
    fs.rmSync(file, { force: true });
    return;
  }
  await policy.saveOptimizer(file);
}

/** Checkpoint folders of a run, newest first. */
function checkpointDirs(runDir: string): string[] {
  const dir = path.join(runDir, CHECKPOINTS_DIR);
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((d) => /^\d-[a-z_]+-\d{6,}$/.test(d) && fs.statSync(path.join(dir, d)).isDirectory())
    .sort()
    .reverse();
}

/** True when the run folder holds checkpoints (or a pointer to one) that `--resume` would continue. */
export function hasCheckpoint(runDir: string): boolean {
  return fs.existsSync(path.join(runDir, LATEST)) || checkpointDirs(runDir).length > 0;
}

/** Parses a JSON file, naming it (and the position) when it is damaged. */
function readJson(file: string): unknown {
  const text = fs.readFileSync(file, 'utf8');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new RangeError(`${file}: not valid JSON (${(err as Error).message}); the file is damaged (truncated?)`);
  }
}

function parseState(file: string, raw: unknown): RunState {
  const r = RunStateSchema.safeParse(raw);
  if (!r.success) throw new RangeError(`${file}: not a run state (${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')})`);
  return r.data;
}

export interface Restored {
  policy: NativePolicy;
  state: RunState;
  /** The checkpoint folder resumed from. */
  dir: string;
}

export class ResumeError extends Error {
  /** Always 'ResumeError': no checkpoint of the run verifies. */
  override name = 'ResumeError';
}

/** Loads one checkpoint folder, verifying its state, policy and optimizer; throws naming what is damaged. */
async function loadCheckpoint(cdir: string, dev: DeviceOptions): Promise<Restored> {
  const stateFile = path.join(cdir, STATE);
  if (!fs.existsSync(stateFile)) throw new RangeError(`${stateFile}: missing (the checkpoint was not finished)`);
  const state = parseState(stateFile, readJson(stateFile));
  const policy = await NativePolicy.load(path.join(cdir, POLICY), dev);
  try {
    const optim = path.join(cdir, OPTIMIZER);
    if (fs.existsSync(optim)) await policy.loadOptimizer(optim); // absent: a fresh optimizer (phase start)
  } catch (err) {
    policy.dispose();
    throw err;
  }
  return { policy, state, dir: cdir };
}

/**
 * The newest checkpoint of `runDir` that verifies: the one latest.json names first, then the others
 * newest first. Each damaged one is logged with the reason; undefined when the run has none at all.
 */
export async function restoreLatest(runDir: string, dev: DeviceOptions, log: (line: string) => void): Promise<Restored | undefined> {
  const candidates: string[] = [];
  const problems: string[] = [];
  const latest = path.join(runDir, LATEST);
  if (fs.existsSync(latest)) {
    try {
      const ptr = readJson(latest) as { dir?: unknown };
      if (!ptr || typeof ptr.dir !== 'string' || path.isAbsolute(ptr.dir) || ptr.dir.split(/[\\/]/).includes('..')) {
        throw new RangeError(`${latest}: no checkpoint folder ("dir") inside the run`);
      }
      candidates.push(path.join(runDir, ptr.dir));
    } catch (err) {
      problems.push((err as Error).message);
      log(`resume: ${(err as Error).message}; looking for the newest checkpoint that verifies`);
    }
  }
  for (const d of checkpointDirs(runDir)) {
    const full = path.join(runDir, CHECKPOINTS_DIR, d);
    if (!candidates.includes(full)) candidates.push(full);
  }
  if (candidates.length === 0 && problems.length === 0) return undefined;
  for (const cdir of candidates) {
    try {
      const r = await loadCheckpoint(cdir, dev);
      if (problems.length) log(`resume: continuing from ${path.relative(runDir, cdir)}, the newest checkpoint that verifies`);
      return r;
    } catch (err) {
      problems.push((err as Error).message);
      log(`resume: checkpoint ${path.relative(runDir, cdir)} is damaged: ${(err as Error).message}`);
    }
  }
  throw new ResumeError(`cannot resume ${runDir}: no checkpoint verifies:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
}
