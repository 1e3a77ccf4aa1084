// Seeded splits: an item's split is a pure function of (seed, id), so it never moves when the
// dataset grows, is re-ordered or is read in a different batch size.
import { hashInts, hashString } from './rng';
import type { Split } from './types';

export const DEFAULT_FRACTIONS: [number, number, number] = [0.8, 0.1, 0.1];

export function splitOf(id: string, seed = 0, fractions: [number, number, number] = DEFAULT_FRACTIONS): Split {
  const total = fractions[0] + fractions[1] + fractions[2];
  if (!(total > 0) || fractions.some((f) => f < 0)) throw new RangeError(`Expected non-negative split fractions but received [${fractions.join(', ')}]`);
  const u = hashInts(seed, hashString(id)) / 4294967296;
  if (u < fractions[0] / total) return 'train';
  if (u < (fractions[0] + fractions[1]) / total) return 'val';
  return 'test';
}
