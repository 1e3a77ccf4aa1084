// VectorEnv: n MedGymEnvs stepped concurrently, with Gymnasium's next-step autoreset: the step after
// a sub-env terminates or truncates resets it (its action is ignored) and returns the reset
// observation with reward 0 and info.autoreset = true.
import { batchStats, type BatchEntry, type BatchStats } from '../rewards';
import type { MedGymEnv } from './env';
import type { Observation, ResetOptions, StepInfo } from './types';

export interface VectorStepResult {
  /** One per sub-env: its next observation (after an autoreset, the new episode's first). */
  observations: Observation[];
  /** One per sub-env: the step's reward. */
  rewards: number[];
  /** One per sub-env: the episode ended with an answer. */
  terminated: boolean[];
  /** One per sub-env: the episode was cut by a limit. */
  truncated: boolean[];
  /** One per sub-env: the step's info (`autoreset` marks a sub-env that was reset). */
  infos: StepInfo[];
}

export class VectorEnv {
  /** The sub-envs, in index order. */
  readonly envs: MedGymEnv[];
  private needsReset: boolean[];
  private finished: BatchEntry[] = [];

  constructor(envs: MedGymEnv[]) {
    if (envs.length === 0) throw new RangeError('Expected at least one sub-env');
    this.envs = envs;
    this.needsReset = envs.map(() => true);
  }

  get numEnvs(): number {
    return this.envs.length;
  }

  /**
   * Resets every sub-env; with a seed, sub-env i gets seed + i (as Gymnasium does). `indices` picks
   * the item of each sub-env (GRPO: G sub-envs per prompt share an index).
   */
  async reset(args: { seed?: number; options?: ResetOptions; indices?: number[] } = {}): Promise<{ observations: Observation[]; infos: StepInfo[] }> {
    if (args.indices && args.indices.length !== this.envs.length) throw new RangeError(`Expected ${this.envs.length} indices but received ${args.indices.length}`);
    const rs = await Promise.all(
      this.envs.map((e, i) =>
        e.reset({ seed: args.seed === undefined ? undefined : args.seed + i, options: args.indices ? { ...args.options, index: args.indices[i] } : args.options }),
      ),
    );
    this.needsReset = this.envs.map(() => false);
    return { observations: rs.map((r) => r.observation), infos: rs.map((r) => r.info) };
  }

  /** Steps every sub-env with its action, concurrently. */
  async step(actions: (string | ArrayLike<number>)[]): Promise<VectorStepResult> {
    if (actions.length !== this.envs.length) throw new RangeError(`Expected ${this.envs.length} actions but received ${actions.length}`);
    const rs = await Promise.all(
      this.envs.map(async (env, i) => {
        if (this.needsReset[i]) {
          const r = await env.reset();
          return { observation: r.observation, reward: 0, terminated: false, truncated: false, info: { ...r.info, autoreset: true } };
        }
        return env.step(actions[i]);
      }),
    );
    rs.forEach((r, i) => {
      this.needsReset[i] = r.terminated || r.truncated;
      if (this.needsReset[i] && r.info.summary && r.info.reward) {
        this.finished.push({ summary: r.info.summary, reward: r.info.reward, modality: r.info.modality, questionType: r.info.questionType });
      }
    });
    return {
      observations: rs.map((r) => r.observation),
      rewards: rs.map((r) => r.reward),
      terminated: rs.map((r) => r.terminated),
      truncated: rs.map((r) => r.truncated),
      infos: rs.map((r) => r.info),
    };
  }

  /** Metrics of the episodes finished since the last call (SPEC §7 per-batch stats), then forgets them. */
  drainStats(): BatchStats {
    const s = batchStats(this.finished);
    this.finished = [];
    return s;
  }

  close(): void {
    for (const e of this.envs) e.close();
  }
}
