// The kernel implementations a layer test runs over: the optimized kernel on each SIMD path, and the
// plain scalar `*_ref` kernel (option `reference: true`, SIMD-independent, so run once). Use with
// describe.each(impls)('name ($name)', ({ level, reference }) => ...), calling setSimdLevel(level) in
// beforeAll and restoring 'avx512' in afterAll.
import type { SimdLevel } from '../../src/native';

export interface Impl {
  name: string;
  level: SimdLevel;
  reference: boolean;
}

export const impls: Impl[] = [
  { name: 'portable path', level: 'portable', reference: false },
  { name: 'avx2 path', level: 'avx2', reference: false },
  { name: 'avx512 path', level: 'avx512', reference: false },
  { name: 'reference kernel', level: 'avx512', reference: true },
];
