export { passAtK, passAtKCurve } from './passk';
export { evaluate, evalEpisodes } from './evaluate';
export { breakdown, summarizeGroup } from './groups';
export type { EvalResult, EvalModeResult, EvalOptions } from './evaluate';
export type { EvalGroupResult, GroupBreakdown, ItemOutcome } from './groups';
