export { passAtK, passAtKCurve } from './passk';
export { evaluate, evalEpisodes } from './evaluate';
export type { EvalResult, EvalModeResult, EvalGroupResult, EvalOptions } from './evaluate';
