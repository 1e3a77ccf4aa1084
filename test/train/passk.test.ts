// Unbiased Pass@K against a brute-force count over all k-subsets of the n samples.
import { passAtK, passAtKCurve } from '../../src/eval/passk';
import { expectThrows } from '../helpers/errors';

/** Share of k-subsets of n samples (c of them correct) that hold at least one correct sample. */
function bruteForce(n: number, c: number, k: number): number {
  let hit = 0;
  let all = 0;
  for (let mask = 0; mask < 1 << n; mask++) {
    let bits = 0;
    for (let i = 0; i < n; i++) if (mask & (1 << i)) bits++;
    if (bits !== k) continue;
    all++;
    // samples 0..c-1 are the correct ones
    if ((mask & ((1 << c) - 1)) !== 0) hit++;
  }
  return hit / all;
}

test('passAtK equals the combinatorial definition for every n ≤ 12, c, k', () => {
  for (let n = 1; n <= 12; n++)
    for (let c = 0; c <= n; c++)
      for (let k = 1; k <= n; k++) expect(passAtK(n, c, k)).toBeCloseTo(bruteForce(n, c, k), 12);
});

test('passAtK: k = 1 is c/n, all wrong is 0, monotone in k, stable for large n', () => {
  expect(passAtK(16, 5, 1)).toBeCloseTo(5 / 16, 12);
  expect(passAtK(16, 0, 16)).toBe(0);
  for (let k = 2; k <= 200; k++) expect(passAtK(200, 3, k)).toBeGreaterThanOrEqual(passAtK(200, 3, k - 1));
  expect(Number.isFinite(passAtK(1000, 1, 500))).toBe(true);
});

test('passAtKCurve averages over items for K = 1..n', () => {
  const curve = passAtKCurve([{ n: 4, c: 1 }, { n: 4, c: 0 }, { n: 4, c: 4 }]);
  expect(curve).toHaveLength(4);
  curve.forEach((v, k) => expect(v).toBeCloseTo((bruteForce(4, 1, k + 1) + 0 + 1) / 3, 12));
  expect(passAtKCurve([])).toEqual([]);
});

test('passAtK rejects impossible counts, naming them', () => {
  expectThrows(() => passAtK(4, 5, 1), 'RangeError', /c=5/);
  expectThrows(() => passAtK(4, 1, 5), 'RangeError', /k=5/);
  expectThrows(() => passAtK(4, 1.5, 1), 'TypeError', /integers/);
  expect(() => passAtKCurve([{ n: 4, c: 1 }, { n: 3, c: 1 }])).toThrow(/same number of samples/);
});
