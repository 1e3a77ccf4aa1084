// The `medgym train` orchestrator: preflight checks → SFT warm start → eval of the SFT policy → GRPO →
// final eval → control → report. Writes metrics.jsonl and trajectories.jsonl, checkpoints atomically
// (./checkpoints: policy, optimizer, phase, step; every random stream is keyed by (seed, step), so the
// step is the RNG and data position), resumes exactly (past a damaged checkpoint to the newest that
// verifies), skips non-finite steps and stops after repeated ones, and saves on Ctrl-C (or after
// `stopAfter` steps).
import * as fs from 'fs';
import * as path from 'path';
import { writeFileAtomic } from '../io/atomic';
import { nativeInfo, setNumThreads } from '../native';
import { describeDevice, NativePolicy } from '../policy';
import { decode } from '../tokenizer';
import type { VectorEnv } from '../env';
import type { EvalResult } from '../eval';
import { lrAt, type TrainConfig } from './config';
import { CHECKPOINTS_DIR, LATEST, restoreLatest, saveCheckpoint, type Phase, type RunState } from './checkpoints';
import { describeItems } from './data';
import { makeTrainVec, trainEnvExtra } from './envs';
import { evaluatePolicy, runEvalEpisodes } from './evaluate_run';
import { grpoUpdate } from './grpo';
import { makeProgress, type Progress } from './progress';
import { rollout, type Trajectory } from '../rollout';
import { PreflightError, preflight } from './preflight';
import { demoSource } from './demo_pool';
import { sftIndices, sftStep } from './sft';

export type { Phase, RunState } from './checkpoints';

export interface RunResult {
  /** The run folder (absolute). */
  dir: string;
  /** 'done', 'stopped' (Ctrl-C or stopAfter: resume with --resume), or the phase it stopped in. */
  status: 'done' | 'stopped';
  /** The run's state at the end (phase, step, counters), as checkpointed. */
  state: RunState;
  /** The folder of the last checkpoint written. */
  checkpoint: string;
}

export class TrainingDivergedError extends Error {
  /** Always 'TrainingDivergedError': too many consecutive non-finite steps. */
  override name = 'TrainingDivergedError';
}

export const RUN_FILES = {
  config: 'config.json',
  /** What the run trained and evaluated on: the dataset opened, its splits, skipped rows, the demo pool. */
  data: 'data.json',
  metrics: 'metrics.jsonl',
  trajectories: 'trajectories.jsonl',
  evalSft: 'eval_sft.json',
  evalFinal: 'eval_final.json',
  evalControl: 'eval_control.json',
  sftPolicy: 'sft.safetensors',
  sftOptimizer: 'sft.optimizer.safetensors',
  controlPolicy: 'control.safetensors',
  finalPolicy: 'final.safetensors',
  checkpoints: CHECKPOINTS_DIR,
  latest: LATEST,
} as const;

export interface RunOptions {
  /** Continue from the run directory's latest checkpoint. */
  resume?: boolean;
  /** Log lines (default stderr). */
  log?: (line: string) => void;
  /** Return true to stop at the next step boundary (checkpoint, status 'stopped'). Ctrl-C sets it too. */
  shouldStop?: () => boolean;
  /** Install a SIGINT handler (the CLI does; tests need not). Default true. */
  handleSigint?: boolean;
}

const fileSize = (f: string): number => (fs.existsSync(f) ? fs.statSync(f).size : 0);

/** Runs (or resumes) the recipe in `cfg.out`. */
export async function runTraining(config: TrainConfig, opts: RunOptions = {}): Promise<RunResult> {
  let cfg = config;
  const dir = path.resolve(cfg.out);
  const P = (f: string): string => path.join(dir, f);
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  // Every problem that would stop the run is found before any work (and before the folder is written).
  const { problems, items } = await preflight(cfg, { resume: opts.resume });
  if (problems.length || !items) throw new PreflightError(problems);
  log(describeItems(items));
  if (cfg.env.dataset && items.resolved) cfg = { ...cfg, env: { ...cfg.env, dataset: { ...cfg.env.dataset, resolved: items.resolved } } };
  const source = items.source;
  const progress = makeProgress(cfg.progress, cfg.logEvery, log);
  fs.mkdirSync(P(RUN_FILES.checkpoints), { recursive: true });
  const dev = { device: cfg.device, dtype: cfg.dtype }; // every policy of the run (docs/cuda.md)

  // ---- state: fresh or from the newest checkpoint that verifies
  let state: RunState = { phase: 'sft', step: 0, metricsBytes: 0, trajectoriesBytes: 0, badSteps: 0, elapsed: 0 };
  let policy: NativePolicy;
  let lastCheckpoint = '';
  const restored = opts.resume ? await restoreLatest(dir, dev, log) : undefined;
  if (restored) {
    ({ policy, state } = restored);
    lastCheckpoint = restored.dir;
    // Drop what was logged after the checkpoint: those steps run again, identically.
    fs.truncateSync(P(RUN_FILES.metrics), Math.min(state.metricsBytes, fileSize(P(RUN_FILES.metrics))));
    if (fs.existsSync(P(RUN_FILES.trajectories))) fs.truncateSync(P(RUN_FILES.trajectories), Math.min(state.trajectoriesBytes, fileSize(P(RUN_FILES.trajectories))));
    log(`resuming ${dir} at ${state.phase} step ${state.step} (checkpoint ${path.relative(dir, restored.dir)})`);
  } else {
    if (opts.resume) log(`no checkpoint in ${dir}: starting fresh`);
    for (const f of [RUN_FILES.metrics, RUN_FILES.trajectories]) fs.writeFileSync(P(f), '');
    policy = cfg.policy.init ? await NativePolicy.load(cfg.policy.init, dev) : await NativePolicy.createAsync(cfg.policy.preset, { seed: cfg.policy.seed, ...dev });
  }
  log(`policy device: ${describeDevice(policy.deviceInfo)}`);
  await writeFileAtomic(P(RUN_FILES.config), JSON.stringify(cfg, null, 2) + '\n');
  const dataRecord: Record<string, unknown> = { items: describeItems(items), dataset: items.resolved, splits: items.summary, skipped: items.skipped };
  await writeFileAtomic(P(RUN_FILES.data), JSON.stringify(dataRecord, null, 2) + '\n');
  const t0 = Date.now();
  const before = state.elapsed; // seconds of earlier invocations (checkpoints overwrite state.elapsed with the total)
  const elapsed = (): number => before + (Date.now() - t0) / 1000;
  const dims = { imageTokens: policy.imageTokens, maxSeq: policy.config.maxSeq };

  // ---- stopping: Ctrl-C, stopAfter, caller
  let sigint = false;
  const onSigint = (): void => {
    if (sigint) process.exit(130);
    sigint = true;
    log('\nCtrl-C: saving a checkpoint at the end of this step (again to quit now)');
  };
  if (opts.handleSigint ?? true) process.on('SIGINT', onSigint);
  let stepsThisRun = 0;
  const mustStop = (): boolean => sigint || (cfg.stopAfter > 0 && stepsThisRun >= cfg.stopAfter) || (opts.shouldStop?.() ?? false);

  const appendJsonl = (file: string, rows: unknown[]): void => {
    if (rows.length) fs.appendFileSync(P(file), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  };
  const checkpoint = async (): Promise<string> => {
    state.metricsBytes = fileSize(P(RUN_FILES.metrics));
    state.trajectoriesBytes = fileSize(P(RUN_FILES.trajectories));
    state.elapsed = elapsed();
    lastCheckpoint = await saveCheckpoint(dir, policy, state);
    return lastCheckpoint;
  };
  const badStep = (what: string): void => {
    state.badSteps++;
    appendJsonl(RUN_FILES.metrics, [{ phase: state.phase, step: state.step, skipped: true, reason: what, time: elapsed() }]);
    progress.log(`${state.phase} step ${state.step}: ${what}: step skipped (${state.badSteps} in a row)`);
    if (state.badSteps >= cfg.maxBadSteps) {
      throw new TrainingDivergedError(
        `stopping: ${state.badSteps} consecutive non-finite ${state.phase} steps (last at step ${state.step}). ` +
          `The last good checkpoint is intact: ${lastCheckpoint || '(none yet)'}. Lower the learning rate or resume from it.`,
      );
    }
  };
  const nextPhase = async (phase: Phase): Promise<void> => {
    state.phase = phase;
    state.step = 0;
    state.badSteps = 0;
    await checkpoint();
  };
  const stopped = async (): Promise<RunResult> => {
    progress.stop();
    const c = await checkpoint();
    log(`stopped at ${state.phase} step ${state.step}; checkpoint ${c}; continue with --resume`);
    return { dir, status: 'stopped', state, checkpoint: c };
  };

  const vecs: VectorEnv[] = [];
  const vec = (n: number, extra = {}): VectorEnv => {
    const v = makeTrainVec(cfg.env, n, dims, { ...items.envExtra, ...extra });
    vecs.push(v);
    return v;
  };
  // The pool is process-wide: set for the run, given back after it (an embedding app keeps its own).
  const threadsBefore = nativeInfo().threads;
  if (cfg.threads > 0) setNumThreads(cfg.threads);
  try {
    // ---- SFT: the warm start, and the control (the SFT policy trained further by SFT for GRPO's wall time)
    const poolItems = source.sftPool(cfg.sft.demoPool);
    const demoEnvs = Math.min(64, cfg.sft.batchSize, Math.max(1, cfg.sft.demoPool || cfg.sft.batchSize));
    const demosOf = demoSource(() => vec(demoEnvs, { revealGroundTruth: true, ...trainEnvExtra(cfg.env) }), cfg.seed, cfg.sft, poolItems, async (p) => {
      dataRecord.demoPool = p;
      await writeFileAtomic(P(RUN_FILES.data), JSON.stringify(dataRecord, null, 2) + '\n');
      log(`SFT demo pool: ${p.demonstrations} demonstrations (${Object.entries(p.kinds).map(([k, v]) => `${k} ${v}`).join(', ')}; ${p.zoom} zoom to a finding box, ${p.answerOnly} answer only)`);
    });
    /**
     * SFT steps from state.step while `more()`; `at(k)` maps the phase step to the SFT schedule step
     * (batch draw and lr), `lrOf` may fix the rate; progress shows `done()` of `total`.
     */
    const sftLoop = async (
      total: number, at: (k: number) => number, more: () => boolean, lrOf: (k: number) => number | undefined, done: () => number,
    ): Promise<RunResult | undefined> => {
      progress.start(state.phase, total, done());
      let tokens = 0;
      const ts = Date.now();
      while (more()) {
        if (mustStop()) return await stopped();
        const k = at(state.step);
        const t1 = Date.now();
        const m = await sftStep(policy, await demosOf(sftIndices(k, cfg.seed, cfg.sft, source, poolItems)), k, cfg.sft, cfg.injectNan.includes(`${state.phase}:${state.step}`), lrOf(k));
        tokens += m.tokens;
        if (!m.finite) badStep(`non-finite ${Number.isFinite(m.loss) ? 'gradient' : 'loss'}`);
        else {
          state.badSteps = 0;
          appendJsonl(RUN_FILES.metrics, [{ phase: state.phase, step: state.step, loss: m.loss, lr: m.lr, gradNorm: m.gradNorm, tokens: m.tokens, time: elapsed() }]);
        }
        if (state.phase === 'control') state.controlSeconds = (state.controlSeconds ?? 0) + (Date.now() - t1) / 1000;
        state.step++;
        stepsThisRun++;
        progress.update(Math.min(total, done()), { loss: m.loss.toFixed(3), 'tok/s': ((tokens * 1000) / Math.max(1, Date.now() - ts)).toFixed(0) });
        if (state.step % cfg.checkpointEvery === 0 && more()) await checkpoint();
      }
      progress.stop();
      return undefined;
    };

    if (state.phase === 'sft') {
      if (cfg.sft.steps > 0) {
        const r = await sftLoop(cfg.sft.steps, (k) => k, () => state.step < cfg.sft.steps, () => undefined, () => state.step);
        if (r) return r;
      }
      await policy.save(P(RUN_FILES.sftPolicy));
      if (cfg.sft.steps > 0) await policy.saveOptimizer(P(RUN_FILES.sftOptimizer));
      // GRPO starts from the SFT weights with a fresh optimizer (its own warmup, its own lr).
      policy.dispose();
      policy = await NativePolicy.load(P(RUN_FILES.sftPolicy), dev);
      await nextPhase('eval_sft');
    }

    const runEval = async (label: string, file: string): Promise<EvalResult> => {
      let done = 0;
      progress.start(`eval ${label}`, runEvalEpisodes(cfg, items), 0);
      const r = await evaluatePolicy(policy, cfg, items, label, (n) => progress.update((done += n), {}));
      progress.stop();
      await writeFileAtomic(P(file), JSON.stringify(r, null, 2) + '\n');
      const w = r.withTools;
      log(`eval ${label}: Acc@1 ${w.acc1.toFixed(3)} Pass@${r.samples} ${w.passAtK[r.samples - 1]?.toFixed(3)} (tools) | ` + (r.withoutTools ? `Acc@1 ${r.withoutTools.acc1.toFixed(3)} (no tools) | ` : '') + `${r.items} items`);
      return r;
    };

    // ---- the SFT policy's Acc@1 / Pass@K: does it give RL something to find?
    if (state.phase === 'eval_sft') {
      if (cfg.eval.afterSft) await runEval('sft', RUN_FILES.evalSft);
      await nextPhase('grpo');
    }

    // ---- GRPO
    if (state.phase === 'grpo') {
      if (cfg.grpo.steps > 0) {
        const g = cfg.grpo;
        const rv = vec(g.promptsPerStep * g.groupSize, trainEnvExtra(cfg.env));
        const ref = g.loss.beta > 0 ? await NativePolicy.load(P(RUN_FILES.sftPolicy), dev) : null;
        progress.start('grpo', g.steps, state.step);
        let gen = 0;
        const ts = Date.now();
        try {
          while (state.step < g.steps) {
            if (mustStop()) return await stopped();
            const prompts = source.grpoItems(state.step, g.promptsPerStep);
            const tr0 = Date.now();
            const timing = { sampleSeconds: 0, envSeconds: 0 };
            const trajs = await rollout(policy, rv, { seed: cfg.seed, step: state.step, items: prompts, groupSize: g.groupSize, temperature: g.temperature, topP: g.topP, maxNewTokensPerTurn: cfg.env.maxNewTokensPerTurn, timing });
            const tr1 = Date.now();
            const m = await grpoUpdate(policy, ref, trajs, state.step, g, cfg.injectNan.includes(`grpo:${state.step}`));
            gen += m.generatedTokens;
            if (m.skipped > 0 && m.updates === 0) badStep(`non-finite ${Number.isFinite(m.loss) ? 'gradient' : 'loss'}`);
            else {
              state.badSteps = 0;
              appendJsonl(RUN_FILES.metrics, [{ phase: 'grpo', step: state.step, ...m, rolloutSeconds: (tr1 - tr0) / 1000, ...timing, updateSeconds: (Date.now() - tr1) / 1000, time: elapsed() }]);
            }
            if (state.step % cfg.trajectoriesEvery === 0) appendJsonl(RUN_FILES.trajectories, trajs.map((t) => trajectoryRecord(state.step, t)));
            state.grpoSeconds = (state.grpoSeconds ?? 0) + (Date.now() - tr0) / 1000;
            state.step++;
            stepsThisRun++;
            progress.update(state.step, { reward: m.reward.toFixed(3), acc: m.accuracy.toFixed(2), tools: m.toolCallsPerEpisode.toFixed(2), 'gen tok/s': ((gen * 1000) / Math.max(1, Date.now() - ts)).toFixed(0) });
            if (state.step % cfg.checkpointEvery === 0 && state.step < g.steps) await checkpoint();
          }
        } finally {
          ref?.dispose();
        }
        progress.stop();
      }
      await policy.save(P(RUN_FILES.finalPolicy));
      await nextPhase('eval_final');
    }

    if (state.phase === 'eval_final') {
      await runEval('final', RUN_FILES.evalFinal);
      await nextPhase('control');
    }

    // ---- the control: the SFT policy (and its optimizer) trained further by SFT on the same pool for
    // GRPO's wall time, at the rate SFT ended with; its eval is the bar GRPO's gain is measured against.
    if (state.phase === 'control') {
      const budget = state.grpoSeconds ?? 0;
      if (cfg.control && cfg.sft.steps > 0 && cfg.grpo.steps > 0 && budget > 0) {
        if (state.step === 0) {
          policy.dispose();
          policy = await NativePolicy.load(P(RUN_FILES.sftPolicy), dev);
          await policy.loadOptimizer(P(RUN_FILES.sftOptimizer));
          state.controlSeconds = 0;
        }
        const lrEnd = lrAt(cfg.sft.steps - 1, cfg.sft.steps, cfg.sft);
        const spent = (): number => state.controlSeconds ?? 0;
        const r = await sftLoop(Math.ceil(budget), (k) => cfg.sft.steps + k, () => spent() < budget, () => lrEnd, () => Math.floor(spent()));
        if (r) return r;
        await policy.save(P(RUN_FILES.controlPolicy));
        log(`control: ${state.step} SFT steps in ${(state.controlSeconds ?? 0).toFixed(0)} s (GRPO took ${budget.toFixed(0)} s)`);
        await nextPhase('eval_control');
      } else await nextPhase('done');
    }
    if (state.phase === 'eval_control') {
      await runEval('control', RUN_FILES.evalControl);
      await nextPhase('done');
    }
    return { dir, status: 'done', state, checkpoint: lastCheckpoint };
  } finally {
    progress.stop();
    for (const v of vecs) v.close();
    policy.dispose();
    if (cfg.threads > 0) setNumThreads(threadsBefore);
    if (opts.handleSigint ?? true) process.off('SIGINT', onSigint);
  }
}

/** One line of trajectories.jsonl: ids kept exactly; text derived from them for reading. */
export function trajectoryRecord(step: number, t: Trajectory): Record<string, unknown> {
  let first = t.mask.indexOf(1);
  if (first < 0) first = t.tokens.length;
  return {
    step,
    prompt: t.promptIndex,
    sample: t.sampleIndex,
    item: t.itemIndex,
    modality: t.modality,
    questionType: t.questionType,
    reward: t.reward,
    correct: t.correct,
    wellFormed: t.wellFormed,
    answerStatus: t.answerStatus,
    toolCalls: t.toolCalls,
    toolErrors: t.toolErrors,
    truncated: t.truncated,
    truncationReason: t.truncationReason,
    zoomHit: t.zoomHit,
    promptTokens: first,
    text: decode(t.tokens.slice(first)),
    tokens: t.tokens,
    mask: Array.from(t.mask),
  };
}
