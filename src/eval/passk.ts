// Unbiased Pass@K (SPEC §6; Chen et al. 2021): from n samples with c correct,
// pass@k = 1 − C(n−c, k) / C(n, k), computed as a product to stay exact and finite for large n.

/** Unbiased Pass@k estimate for one item with c correct out of n samples (1 ≤ k ≤ n). */
export function passAtK(n: number, c: number, k: number): number {
  if (!Number.isInteger(n) || !Number.isInteger(c) || !Number.isInteger(k)) throw new TypeError(`Expected integers n, c, k but received ${n}, ${c}, ${k}`);
  if (n < 1 || c < 0 || c > n || k < 1 || k > n) throw new RangeError(`Expected 0 ≤ c ≤ n and 1 ≤ k ≤ n but received n=${n}, c=${c}, k=${k}`);
  if (n - c < k) return 1;
  // C(n−c, k)/C(n, k) = Π_{i=n−c+1}^{n} (1 − k/i)
  let q = 1;
  for (let i = n - c + 1; i <= n; i++) q *= 1 - k / i;
  return 1 - q;
}

/** Mean Pass@K over items for K = 1..n: entry K−1. Every item must have the same n. */
export function passAtKCurve(items: { n: number; c: number }[]): number[] {
  if (items.length === 0) return [];
  const n = items[0].n;
  if (items.some((it) => it.n !== n)) throw new RangeError('Expected the same number of samples for every item');
  return Array.from({ length: n }, (_, k) => items.reduce((s, it) => s + passAtK(n, it.c, k + 1), 0) / items.length);
}
