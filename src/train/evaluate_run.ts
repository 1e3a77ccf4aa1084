// Evaluation as a run does it, shared by `medgym train` (after each phase) and `medgym eval`: the
// run's env settings and items, a vector env sized for the samples, the eval options of the config.
import { evaluate, evalEpisodes, type EvalResult } from '../eval';
import type { Policy } from '../policy';
import type { TrainConfig } from './config';
import type { RunItems } from './data';
import { makeTrainVec } from './envs';

/** Episodes evaluatePolicy runs (progress bars), for the items the run's source has. */
export function runEvalEpisodes(cfg: TrainConfig, items: RunItems): number {
  return evalEpisodes({ items: items.source.evalItems(cfg.eval.items).length, samples: cfg.eval.samples, withoutTools: cfg.eval.withoutTools });
}

/** Evaluates `policy` on the run's held-out items (cfg.eval.items of them, fewer when the test split is smaller). */
export async function evaluatePolicy(policy: Policy, cfg: TrainConfig, items: RunItems, label: string, onEpisodes?: (n: number) => void): Promise<EvalResult> {
  const indices = items.source.evalItems(cfg.eval.items);
  const n = Math.max(cfg.eval.samples, Math.min(64, indices.length * cfg.eval.samples));
  const vec = makeTrainVec(cfg.env, n, { imageTokens: policy.imageTokens, maxSeq: policy.maxSeq }, items.envExtra);
  try {
    return await evaluate(policy, vec, {
      label,
      items: indices,
      samples: cfg.eval.samples,
      temperature: cfg.eval.temperature,
      withoutTools: cfg.eval.withoutTools,
      seed: cfg.seed + 0x5eed,
      maxNewTokensPerTurn: cfg.env.maxNewTokensPerTurn,
      onEpisodes,
    });
  } finally {
    vec.close();
  }
}
