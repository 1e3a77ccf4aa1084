// SFT warm start (RECIPE): demonstrations written by the scripted expert through the env (window if
// needed → zoom_in on the ground-truth cell → answer), a configurable share answering without a tool
// and a share zooming into a random cell first; cross-entropy on assistant tokens only; AdamW with
// one warmup and one cosine decay.
import { Stream } from '../data/rng';
import type { VectorEnv, StepInfo, Observation } from '../env';
import type { TrainablePolicy } from '../policy';
import { encode } from '../tokenizer';
import type { ViewImage } from '../tools/image';
import { cellOf } from '../tools/geometry';
import { lrAt, type TrainConfig } from './config';
import type { ItemSource } from '../rollout';

export type DemoKind = 'expert' | 'noisy' | 'no_tool';

/** One demonstration in token space: the env's ids for prompt and responses, the expert's ids for actions (mask 1). */
export interface Demo {
  /** Item index in the task source. */
  index: number;
  /** How it was written: the expert's path, a zoom into a random cell first ('noisy'), or an answer without a tool. */
  kind: DemoKind;
  /** Token ids: the env's prompt and responses and the expert's actions. */
  tokens: number[];
  /** 1 on the expert's action tokens (the loss is taken there), 0 on the env's. */
  mask: number[];
  /** The episode's images, in order of their image tokens. */
  images: ViewImage[];
  /** The demonstration's answer was graded correct. */
  correct: boolean;
  /** It called zoom_in (false: an answer-only demonstration: no finding box, or a no_tool one). */
  zooms: boolean;
  /** The item's imaging modality. */
  modality: string;
  /** The item's question type. */
  questionType: string;
}

const COLS = 'ABCD';
const call = (name: string, args: unknown): string => `<tool_call>${JSON.stringify({ name, arguments: args })}</tool_call>`;

/** Kind of the demonstration of item `index` (a pure function of the seed, the index and the shares). */
export function demoKind(seed: number, index: number, c: TrainConfig['sft']): DemoKind {
  const u = new Stream(seed, index, 0xde40).next();
  return u < c.noToolShare ? 'no_tool' : u < c.noToolShare + c.noisyShare ? 'noisy' : 'expert';
}

/** The next assistant segment of a demonstration of `kind` (needs revealGroundTruth). */
function demoAction(kind: DemoKind, obs0: Observation, info: StepInfo, rnd: Stream, think: boolean): string {
  const gt = info.groundTruth;
  if (!gt) throw new Error('demonstrations need the env option revealGroundTruth: true');
  const th = (t: string): string => (think ? `<think>${t}</think>` : '');
  const plan: string[] = [];
  if (kind !== 'no_tool') {
    if (gt.window) plan.push(th(`Detail needs window ${gt.window.center}/${gt.window.width}.`) + call('window', gt.window));
    if (gt.box && info.questionType !== 'modality') {
      const { width, height } = obs0.originalSize;
      const cell = kind === 'noisy' ? `${COLS[rnd.int(0, 4)]}${rnd.int(1, 5)}` : cellOf(gt.box, width, height);
      plan.push(th(`The finding is in ${cell}.`) + call('zoom_in', { cell }));
    }
  }
  plan.push(th('Read the detail.') + `<answer>${gt.letter ?? gt.answerText}</answer><|eos|>`);
  return plan[Math.min(info.turn, plan.length - 1)];
}

/** Runs one demonstration per item index on the vector env (one sub-env per index, concurrently). */
export async function makeDemos(vec: VectorEnv, indices: number[], seed: number, c: TrainConfig['sft']): Promise<Demo[]> {
  if (indices.length > vec.numEnvs) throw new RangeError(`Expected at most ${vec.numEnvs} indices but received ${indices.length}`);
  return Promise.all(
    indices.map(async (index, i) => {
      const env = vec.envs[i];
      const kind = demoKind(seed, index, c);
      const rnd = new Stream(seed, index, 0xce11);
      let { observation, info } = await env.reset({ options: { index } });
      const first = observation;
      const d: Demo = { index, kind, tokens: [...observation.tokens], mask: observation.tokens.map(() => 0), images: [...observation.images], correct: false, zooms: false, modality: info.modality, questionType: info.questionType };
      for (;;) {
        const ids = encode(demoAction(kind, first, info, rnd, c.think));
        d.tokens.push(...ids);
        d.mask.push(...ids.map(() => 1));
        const r = await env.step(ids);
        if (r.terminated || r.truncated) {
          d.correct = r.info.answer?.correct ?? false;
          d.zooms = r.info.toolCalls.some((t) => t.name === 'zoom_in');
          return d;
        }
        d.tokens.push(...r.observation.tokens);
        d.mask.push(...r.observation.tokens.map(() => 0));
        d.images.push(...r.observation.images);
        ({ observation, info } = r);
      }
    }),
  );
}

/**
 * The item indices of SFT step `step`: draws from the demo pool (`pool`, the source's first
 * demoPool demonstration items), or the source's fresh items when the pool is unlimited (0).
 */
export function sftIndices(step: number, seed: number, c: TrainConfig['sft'], source: ItemSource, pool: readonly number[]): number[] {
  if (c.demoPool === 0) return source.sftFresh(step, c.batchSize);
  // Sample pool positions for this step from the step's own stream (resumable: no cursor state).
  const s = new Stream(seed, step, 0x5f7);
  return Array.from({ length: c.batchSize }, () => pool[s.int(0, c.demoPool)]);
}

export interface SftStepMetrics {
  /** Mean cross-entropy over the demos' assistant tokens (NaN/Inf when the step was skipped). */
  loss: number;
  /** Assistant tokens the loss was taken over. */
  tokens: number;
  /** Learning rate of this step. */
  lr: number;
  /** Global gradient norm before clipping (NaN when the step was skipped). */
  gradNorm: number;
  /** False when the loss or a gradient was non-finite: the update was skipped. */
  finite: boolean;
}

/** One SFT step: CE on the demos' assistant tokens (mean over them), AdamW. A non-finite loss skips the update. `lr` overrides the schedule. */
export async function sftStep(policy: TrainablePolicy, demos: Demo[], step: number, c: TrainConfig['sft'], injectNan = false, lr = lrAt(step, c.steps, c)): Promise<SftStepMetrics> {
  const ce = await policy.crossEntropyBackward(
    demos.map((d) => ({ tokens: d.tokens, images: d.images, mask: d.mask })),
    { reduction: 'mean' },
  );
  const loss = injectNan ? NaN : ce.loss;
  if (!Number.isFinite(loss)) {
    await policy.zeroGrad();
    return { loss, tokens: ce.count, lr, gradNorm: NaN, finite: false };
  }
  const r = await policy.step({ lr, weightDecay: c.weightDecay, maxGradNorm: c.maxGradNorm });
  return { loss, tokens: ce.count, lr, gradNorm: r.gradNorm, finite: r.finite };
}
