// SFT's demonstrations by item index: with a pool (sft.demoPool > 0) all of them are written once, at
// first use, and drawn from after; with an unlimited pool each draw writes fresh ones.
import type { VectorEnv } from '../env';
import type { TrainConfig } from './config';
import { makeDemos, type Demo, type DemoKind } from './sft';

/** What the pool holds (logged, and in the run's data.json). */
export interface DemoPoolStats {
  demonstrations: number;
  kinds: Partial<Record<DemoKind, number>>;
  /** Demonstrations that zoom into a finding box, and those that only answer. */
  zoom: number;
  answerOnly: number;
}

/**
 * `demos(indices)`: the demonstrations of those items. `vec` makes the env that writes them (called
 * once, at first use); `onPool` hears about the pool when it is built.
 */
export function demoSource(vec: () => VectorEnv, seed: number, c: TrainConfig['sft'], poolItems: readonly number[], onPool: (s: DemoPoolStats) => Promise<void>): (indices: number[]) => Promise<Demo[]> {
  let env: VectorEnv | undefined;
  let pool: Map<number, Demo> | undefined;
  const write = async (indices: readonly number[]): Promise<Demo[]> => {
    const dv = (env ??= vec());
    const out: Demo[] = [];
    for (let i = 0; i < indices.length; i += dv.numEnvs) out.push(...(await makeDemos(dv, indices.slice(i, i + dv.numEnvs), seed, c)));
    return out;
  };
  return async (indices) => {
    if (c.demoPool === 0) return write(indices);
    if (!pool) {
      pool = new Map((await write(poolItems)).map((d) => [d.index, d]));
      const all = [...pool.values()];
      const kinds: Partial<Record<DemoKind, number>> = {};
      for (const d of all) kinds[d.kind] = (kinds[d.kind] ?? 0) + 1;
      const zoom = all.filter((d) => d.zooms).length;
      await onPool({ demonstrations: all.length, kinds, zoom, answerOnly: all.length - zoom });
    }
    return indices.map((i) => pool!.get(i)!);
  };
}
