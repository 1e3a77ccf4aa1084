// Seeded uniform [-1, 1) data from xorshift32, for the GEMM tests. Not helpers/random's Rng: its
// Math.* calls are very slow inside jest's VM context, and these tests need hundreds of thousands of values.
export class XorShiftRng {
  private s: number;
  constructor(seed: number) {
    this.s = (seed * 2654435761) | 0 || 1;
  }
  f32(n: number): Float32Array {
    const a = new Float32Array(n);
    let s = this.s;
    for (let i = 0; i < n; i++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      a[i] = (s >>> 0) / 2147483648 - 1;
    }
    this.s = s;
    return a;
  }
}
