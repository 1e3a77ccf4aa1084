// Tolerance checks against float64 references, with messages that point at the worst element.

/** Max over i of |a-b| / max(|b|, floor): relative error with an absolute floor near zero. */
export function maxRelError(actual: ArrayLike<number>, expected: ArrayLike<number>, floor = 1e-3): { err: number; at: number } {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} != ${expected.length}`);
  let err = 0;
  let at = -1;
  for (let i = 0; i < actual.length; i++) {
    const e = Math.abs(actual[i] - expected[i]) / Math.max(Math.abs(expected[i]), floor);
    if (!(e <= err)) {
      err = e;
      at = i;
      if (Number.isNaN(e)) break;
    }
  }
  return { err, at };
}

export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, floor = 1e-3): void {
  const { err, at } = maxRelError(actual, expected, floor);
  if (!(err <= tol)) {
    throw new Error(`max relative error ${err.toExponential(3)} > ${tol} at index ${at}: got ${actual[at]}, expected ${expected[at]}`);
  }
}

/**
 * Central finite difference of a scalar function f(x) w.r.t. x[i], computed in float64 on a copy.
 * Use it with float64 reference forwards: checks that analytic float32 gradients match the math.
 */
export function finiteDiff(f: (x: Float64Array) => number, x: Float64Array, i: number, h = 1e-5): number {
  const xp = Float64Array.from(x);
  const xm = Float64Array.from(x);
  xp[i] += h;
  xm[i] -= h;
  return (f(xp) - f(xm)) / (2 * h);
}

export const toF64 = (a: ArrayLike<number>): Float64Array => Float64Array.from(a as ArrayLike<number>);
