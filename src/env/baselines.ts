// Scripted baselines that act on observations and info, no model: the expert that writes SFT
// demonstrations, pixel readers with and without zoom (the design-rule check of SPEC §5), a
// guessing no-tool policy, and a question-only prior learner (must stay at chance).
import { LOOKS, TEXTURES, type Modality } from '../data/synth';
import { Stream, hashString } from '../data/rng';
import type { VqaItem } from '../data/types';
import { cellOf } from '../tools/geometry';
import type { Box, ViewImage } from '../tools/image';
import { LETTERS } from './protocol';
import type { Observation, StepInfo } from './types';

export interface ScriptedPolicy {
  /** Short name of the policy (e.g. 'expert', 'guess'). */
  readonly name: string;
  /** The next assistant segment given the latest observation and info. */
  act(obs: Observation, info: StepInfo): string;
}

const toolCall = (name: string, args: unknown): string => `<tool_call>${JSON.stringify({ name, arguments: args })}</tool_call>`;
const answer = (letter: string): string => `<answer>${letter}</answer><|eos|>`;

function requireTruth(info: StepInfo): NonNullable<StepInfo['groundTruth']> {
  if (!info.groundTruth) throw new Error('this scripted policy needs the env option revealGroundTruth: true');
  return info.groundTruth;
}

/**
 * Window (when the item needs one) → zoom_in on the ground-truth cell (or bbox) → the answer; the
 * SFT demonstration writer. `think` adds a short <think> before each action.
 */
export function expertPolicy(opts: { useBbox?: boolean; think?: boolean } = {}): ScriptedPolicy {
  const th = (t: string): string => (opts.think ? `<think>${t}</think>` : '');
  return {
    name: 'expert',
    act(obs, info) {
      const gt = requireTruth(info);
      const plan: string[] = [];
      if (gt.window) plan.push(th(`Detail needs window ${gt.window.center}/${gt.window.width}.`) + toolCall('window', gt.window));
      if (gt.box && info.questionType !== 'modality') {
        const { width, height } = obs.originalSize;
        const cell = cellOf(gt.box, width, height);
        plan.push(th(`The finding is in ${cell}.`) + toolCall('zoom_in', opts.useBbox ? { bbox: gt.box } : { cell }));
      }
      plan.push(th('Read the detail.') + answer(gt.letter ?? gt.answerText));
      return plan[Math.min(info.turn, plan.length - 1)];
    },
  };
}

/** Answers at once with a letter drawn from a stream seeded by the task id (chance level). */
export function guessPolicy(seed = 0): ScriptedPolicy {
  return {
    name: 'guess',
    act(_obs, info) {
      const k = new Stream(seed, hashString(info.taskId)).int(0, Math.max(1, info.options.length));
      return answer(LETTERS[k]);
    },
  };
}

/**
 * Reads the texture class (smooth, horizontal, vertical, checkered) of the finding from pixels.
 * `zoom: false` reads the global view; `zoom: true` zooms on the ground-truth cell first (after the
 * window, when needed). Same reader, different resolution: the gap between the two is the
 * information only a tool gives. Only texture questions (attribute, diagnosis) are read; others
 * are guessed.
 */
export function readerPolicy(opts: { zoom: boolean; seed?: number }): ScriptedPolicy {
  let pendingBox: Box | undefined;
  const guess = guessPolicy(opts.seed ?? 0);
  return {
    name: opts.zoom ? 'zoom-reader' : 'global-reader',
    act(obs, info) {
      const gt = requireTruth(info);
      const names = textureNames(info);
      if (!names || !gt.box) return guess.act(obs, info);
      const { width, height } = obs.originalSize;
      if (info.turn === 0) {
        if (opts.zoom && gt.window) return toolCall('window', gt.window);
        if (!opts.zoom) return readAndAnswer(obs.images[0], gt.box, [0, 0, width, height], names, info, guess, obs);
      }
      const cell = cellOf(gt.box, width, height);
      if (!pendingBox) {
        const col = 'ABCD'.indexOf(cell[0]);
        const row = Number(cell[1]) - 1;
        pendingBox = [Math.round((col * width) / 4), Math.round((row * height) / 4), Math.round(((col + 1) * width) / 4), Math.round(((row + 1) * height) / 4)];
        return toolCall('zoom_in', { cell });
      }
      const view = pendingBox;
      pendingBox = undefined;
      return readAndAnswer(obs.images[0], gt.box, view, names, info, guess, obs);
    },
  };
}

function textureNames(info: StepInfo): readonly string[] | undefined {
  if (info.questionType === 'attribute') return TEXTURES;
  if (info.questionType === 'diagnosis' && info.modality in LOOKS) return LOOKS[info.modality as Modality].diagnoses;
  return undefined;
}

function readAndAnswer(img: ViewImage | undefined, box: Box, shown: Box, names: readonly string[], info: StepInfo, guess: ScriptedPolicy, obs: Observation): string {
  if (!img) return guess.act(obs, info);
  const cls = readTexture(img, box, shown);
  const k = info.options.indexOf(names[cls]);
  return k >= 0 ? answer(LETTERS[k]) : guess.act(obs, info);
}

/** Texture class 0–3 of the central half of `box`, as seen in view `img` that shows region `shown`. */
export function readTexture(img: ViewImage, box: Box, shown: Box): number {
  const sx = img.width / (shown[2] - shown[0]);
  const sy = img.height / (shown[3] - shown[1]);
  const cx = ((box[0] + box[2]) / 2 - shown[0]) * sx;
  const cy = ((box[1] + box[3]) / 2 - shown[1]) * sy;
  const hx = Math.max(1, ((box[2] - box[0]) / 4) * sx);
  const hy = Math.max(1, ((box[3] - box[1]) / 4) * sy);
  const x0 = Math.max(0, Math.floor(cx - hx));
  const x1 = Math.min(img.width - 2, Math.ceil(cx + hx));
  const y0 = Math.max(0, Math.floor(cy - hy));
  const y1 = Math.min(img.height - 2, Math.ceil(cy + hy));
  const C = img.channels;
  const luma = (x: number, y: number): number => {
    let s = 0;
    for (let c = 0; c < C; c++) s += img.data[(y * img.width + x) * C + c];
    return s / C;
  };
  let dx = 0;
  let dy = 0;
  let dd = 0;
  let n = 0;
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const v = luma(x, y);
      dx += Math.abs(luma(x + 1, y) - v);
      dy += Math.abs(luma(x, y + 1) - v);
      dd += Math.abs(luma(x + 1, y + 1) - v);
      n++;
    }
  }
  if (n === 0) return 0;
  [dx, dy, dd] = [dx / n, dy / n, dd / n];
  const lo = Math.min(dx, dy, dd);
  const hi = Math.max(dx, dy, dd);
  if (hi < 1.6 * lo + 1) return 0;
  if (dd < 0.6 * Math.min(dx, dy)) return 3;
  return dy > dx ? 1 : 2;
}

/**
 * Question-only baseline: learns, per question text, how often each option text is the answer, and
 * picks the option with the best rate. On a task without text priors it stays at chance.
 */
export class QuestionOnlyBaseline {
  private stats = new Map<string, { seen: number; right: number }>();
  fit(items: Iterable<VqaItem>): void {
    for (const it of items) {
      it.options.forEach((o, k) => {
        const key = `${it.question}\u0000${o}`;
        const s = this.stats.get(key) ?? { seen: 0, right: 0 };
        s.seen++;
        if (k === it.answer) s.right++;
        this.stats.set(key, s);
      });
    }
  }
  /** Option index predicted from the question and options alone (ties go to the first). */
  predict(question: string, options: string[]): number {
    let best = 0;
    let bestRate = -1;
    options.forEach((o, k) => {
      const s = this.stats.get(`${question}\u0000${o}`);
      const rate = s ? (s.right + 1) / (s.seen + 2) : 0.5;
      if (rate > bestRate) [best, bestRate] = [k, rate];
    });
    return best;
  }
}
