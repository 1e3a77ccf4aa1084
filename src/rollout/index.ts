// Rollouts and the item sources they draw from: below both the trainer (src/train) and evaluation
// (src/eval), so that neither imports the other.
export { rollout } from './rollout';
export type { Trajectory, RolloutOptions } from './rollout';
export * from './items';
