// Task sources behind one Dataset interface: the embedded generator and the file loaders.
export * from './types';
export { splitOf, DEFAULT_FRACTIONS } from './split';
export { Stream, hashInts, hashString } from './rng';
export * from './synth';
export * from './loaders';
export * from './open';
