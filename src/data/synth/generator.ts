// MedVista-Synth-v0: a seeded, procedural medical VQA generator (SPEC §5). A finding's location
// shows at the global view as a faint blob; what decides the answer (texture, count of foci, which
// of two blobs is textured) is drawn at the pixel scale (detailPeriod 2 px), which a 4× downsample
// to the view erases, so the answer needs zoom_in to one grid cell (or a window for CT/MRI).
import type { Box, RawImage } from '../../tools/image';
import { cellOf } from '../../tools/geometry';
import { Stream } from '../rng';
import { QUESTION_TYPES, type QuestionType, type VqaItem } from '../types';
import { quantize, type Canvas } from './canvas';
import { LOOKS, MODALITIES, type Look, type Modality } from './looks';
import { classNames, MODALITY_FAMILIES, questionText } from './questions';

export interface SynthOptions {
  /** Generator seed; item i of seed s is the same whatever else is drawn. Default 0. */
  seed?: number;
  /** Side of the square original image in pixels. Default 256 (a 4× downsample to a 64 view). */
  imageSize?: number;
  /** Modalities to draw from (uniformly). Default all eight. */
  modalities?: Modality[];
  /** Question types to draw from (uniformly). Default all five. */
  questionTypes?: QuestionType[];
  /** Options per question, 2–4. Default 4. */
  numOptions?: number;
  /** Finding radius range as a fraction of the image side (hard items). Default [0.047, 0.07]. */
  findingRadius?: [number, number];
  /** Scales how much the finding stands out at the global view (1 = default, 0.5 = low contrast). */
  contrast?: number;
  /** Period in pixels of the deciding texture on hard items. Default 2 (legible only at ≥ 1:1). */
  detailPeriod?: number;
  /** Share of CT/MRI items whose detail is only legible after `window`. Default 0.5. */
  needsWindow?: number;
  /** Share of easy items: coarse detail (period 16) and larger findings, legible at the global view. Default 0.25. */
  easyFraction?: number;
  /**
   * 'shuffled' (default): the options are a random K-subset of the four classes in random order, so
   * the answer needs reading the option texts too. 'fixed': the first K classes in class order, so
   * letter = class (a curriculum knob for small policies; the letter is still balanced and the
   * question alone still says nothing).
   */
  optionOrder?: 'shuffled' | 'fixed';
  /** Tests only: render this class (0–3) for the finding, keeping every other draw the same. */
  forceClass?: number;
}

export interface SynthMeta {
  /** Grid cell (its name) that holds the finding's centre: where zoom_in should go. */
  cell: string;
  /** An easy item: coarse detail and a larger finding, legible at the global view. */
  easy: boolean;
  /** The detail is legible only through the look's intensity window (CT/MRI). */
  needsWindow: boolean;
  /** The class that decides the answer (texture 0–3, foci count − 1, quadrant, or modality index). */
  detailClass: number;
  /** Box of the decoy finding (anatomy questions), when there is one. */
  decoyBox?: Box;
}

const DEFAULTS = {
  seed: 0,
  imageSize: 256,
  numOptions: 4,
  findingRadius: [0.047, 0.07] as [number, number],
  contrast: 1,
  detailPeriod: 2,
  needsWindow: 0.5,
  easyFraction: 0.25,
  optionOrder: 'shuffled' as 'shuffled' | 'fixed',
};

export function resolveSynthOptions(o: SynthOptions = {}): Required<Omit<SynthOptions, 'forceClass'>> & { forceClass?: number } {
  const r = { ...DEFAULTS, modalities: [...MODALITIES], questionTypes: [...QUESTION_TYPES], ...o };
  if (!Number.isInteger(r.imageSize) || r.imageSize < 32 || r.imageSize > 4096) throw new RangeError(`Expected integer imageSize in [32, 4096] but received ${r.imageSize}`);
  if (!Number.isInteger(r.numOptions) || r.numOptions < 2 || r.numOptions > 4) throw new RangeError(`Expected integer numOptions in [2, 4] but received ${r.numOptions}`);
  if (r.modalities.length === 0 || r.modalities.some((m) => !(m in LOOKS))) throw new RangeError(`Expected modalities among ${MODALITIES.join(', ')} but received ${r.modalities.join(', ')}`);
  if (r.questionTypes.length === 0 || r.questionTypes.some((q) => !QUESTION_TYPES.includes(q))) throw new RangeError(`Expected questionTypes among ${QUESTION_TYPES.join(', ')}`);
  const [a, b] = r.findingRadius;
  if (!(a > 0 && b >= a && b <= 0.1)) throw new RangeError(`Expected 0 < findingRadius[0] <= findingRadius[1] <= 0.1 but received [${a}, ${b}]`);
  if (r.optionOrder !== 'shuffled' && r.optionOrder !== 'fixed') throw new RangeError(`Expected 'shuffled' or 'fixed' for optionOrder but received ${JSON.stringify(r.optionOrder)}`);
  if (!(r.detailPeriod >= 2 && Number.isInteger(r.detailPeriod))) throw new RangeError(`Expected integer detailPeriod >= 2 but received ${r.detailPeriod}`);
  return r;
}

/** Stable id of item index of generator seed. */
export const synthId = (seed: number, index: number): string => `medvista-synth-v0/${seed}/${index}`;

/** Item `index` of the generator: deterministic in (options, index). */
export function generateItem(opts: SynthOptions, index: number): VqaItem {
  return build(opts, index, true) as VqaItem;
}

/** The same item without its pixels (question, options, answer, box): cheap, for text-only baselines. */
export function generateQuestion(opts: SynthOptions, index: number): Omit<VqaItem, 'image'> {
  return build(opts, index, false);
}

function build(opts: SynthOptions, index: number, render: boolean): Omit<VqaItem, 'image'> & { image?: RawImage } {
  const o = resolveSynthOptions(opts);
  const S = o.imageSize;
  const K = o.numOptions;
  const pick = new Stream(o.seed, index, 1);
  const modality = pick.pick(o.modalities);
  const type = pick.pick(o.questionTypes);
  const look = LOOKS[modality];
  const easy = pick.next() < o.easyFraction;
  const needsWindow = look.window !== undefined && !easy && pick.next() < o.needsWindow;
  // The answer letter is balanced exactly within each block of K consecutive indices.
  const letter = new Stream(o.seed, Math.floor(index / K), 2).shuffle([...Array(K).keys()])[index % K];

  // Options: the truth is a uniform member of a random K-subset of four classes.
  let names: readonly string[];
  let truth: number;
  if (type === 'modality') {
    const fam = MODALITY_FAMILIES.find((f) => (f as readonly string[]).includes(modality))!;
    names = fam.map((m) => LOOKS[m as Modality].label);
    truth = (fam as readonly string[]).indexOf(modality);
  } else {
    names = classNames(type, look);
    truth = pick.int(0, 4);
  }
  // Fixed order: the truth is the class of the balanced letter (the draws above are kept, so every
  // other property of the item stays as in the shuffled order).
  const fixed = o.optionOrder === 'fixed' && type !== 'modality';
  if (fixed) truth = letter;
  const draw = o.forceClass ?? truth;
  const others = pick.shuffle([0, 1, 2, 3].filter((c) => c !== truth)).slice(0, K - 1);
  const order = fixed ? [...Array(K).keys()] : [...others];
  if (!fixed) order.splice(letter, 0, truth);

  // Layout: one finding (two for anatomy) inside one grid cell each.
  const [rmin, rmax] = easy ? [0.08, 0.1] : o.findingRadius;
  const r = pick.uniform(rmin, rmax) * S;
  const quadrant = type === 'anatomy' ? draw : pick.int(0, 4);
  const place = (q: number): { cx: number; cy: number } => {
    for (let t = 0; t < 60; t++) {
      const col = (q % 2) * 2 + pick.int(0, 2);
      const row = Math.floor(q / 2) * 2 + pick.int(0, 2);
      const m = r + 1;
      const cx = (col * S) / 4 + m + pick.next() * Math.max(0, S / 4 - 2 * m);
      const cy = (row * S) / 4 + m + pick.next() * Math.max(0, S / 4 - 2 * m);
      if (look.inside(cx / S, cy / S) || t === 59) return { cx, cy };
    }
    throw new Error('unreachable');
  };
  const main = place(quadrant);
  const decoyQ = (quadrant + 1 + pick.int(0, 3)) % 4;
  const decoy = type === 'anatomy' ? place(decoyQ) : undefined;

  const detail: Detail =
    type === 'grading' ? { kind: 'foci', n: draw + 1 } : type === 'anatomy' ? { kind: 'texture', cls: 3 } : type === 'modality' ? { kind: 'texture', cls: pick.int(0, 4) } : { kind: 'texture', cls: draw };
  let image: RawImage | undefined;
  if (render) {
    // Pixels draw from their own streams, so skipping them leaves every other draw unchanged.
    const cv = look.paint(new Stream(o.seed, index, 3), S, S);
    const period = easy ? 16 : o.detailPeriod;
    const amp = needsWindow ? look.needsWindowAmp! : look.detailAmp;
    paintFinding(cv, look, main.cx, main.cy, r, o.contrast, detail, period, amp, easy);
    if (decoy) paintFinding(cv, look, decoy.cx, decoy.cy, r, o.contrast, { kind: 'texture', cls: 0 }, period, amp, easy);
    look.noise(new Stream(o.seed, index, 4), cv);
    image = { data: quantize(cv, look.bitDepth, look.max), width: S, height: S, channels: look.channels, bitDepth: look.bitDepth };
  }
  const box = boxOf(main.cx, main.cy, r, S);
  let question = questionText(type, look);
  if (look.window && type !== 'modality') question += ` Fine detail may need window center ${look.window.center} width ${look.window.width}.`;
  const meta: SynthMeta = { cell: cellOf(box, S, S), easy, needsWindow, detailClass: draw, decoyBox: decoy ? boxOf(decoy.cx, decoy.cy, r, S) : undefined };
  return {
    id: synthId(o.seed, index),
    image,
    question,
    options: order.map((c) => names[c]),
    answer: letter,
    modality,
    questionType: type,
    box,
    window: needsWindow ? look.window : undefined,
    meta: meta as unknown as Record<string, unknown>,
  };
}

type Detail = { kind: 'texture'; cls: number } | { kind: 'foci'; n: number };

function boxOf(cx: number, cy: number, r: number, S: number): Box {
  return [Math.max(0, Math.floor(cx - r)), Math.max(0, Math.floor(cy - r)), Math.min(S, Math.ceil(cx + r)), Math.min(S, Math.ceil(cy + r))];
}

/** Texture sign (−1, 0, +1) of class cls at pixel (x, y) for half-period hp. */
function textureSign(cls: number, x: number, y: number, hp: number): number {
  const bx = Math.floor(x / hp) & 1;
  const by = Math.floor(y / hp) & 1;
  if (cls === 1) return by ? 1 : -1;
  if (cls === 2) return bx ? 1 : -1;
  if (cls === 3) return bx ^ by ? 1 : -1;
  return 0;
}

function paintFinding(cv: Canvas, look: Look, cx: number, cy: number, r: number, contrast: number, d: Detail, period: number, amp: number, easy: boolean): void {
  const hp = period / 2;
  const ch = cv.ch;
  // Foci sit on the axes at 0.55 r (hard: small reticular patches that a 4× downsample erases;
  // easy: solid dots that survive it).
  const foci: [number, number][] = [];
  if (d.kind === 'foci') {
    const dist = 0.55 * r;
    const spots: [number, number][] = [[dist, 0], [-dist, 0], [0, dist], [0, -dist]];
    for (let k = 0; k < d.n; k++) foci.push([cx + spots[k][0], cy + spots[k][1]]);
  }
  const half = easy ? 0.2 * r : 3 * hp;
  for (let y = Math.max(0, Math.floor(cy - r)); y <= Math.min(cv.h - 1, Math.ceil(cy + r)); y++) {
    for (let x = Math.max(0, Math.floor(cx - r)); x <= Math.min(cv.w - 1, Math.ceil(cx + r)); x++) {
      const dx = x + 0.5 - cx;
      const dy = y + 0.5 - cy;
      if (dx * dx + dy * dy > r * r) continue;
      let s = 0;
      if (d.kind === 'texture') s = textureSign(d.cls, x, y, hp);
      else {
        for (const [fx, fy] of foci) {
          if (Math.abs(x + 0.5 - fx) <= half && Math.abs(y + 0.5 - fy) <= half) s = easy ? 1.5 : textureSign(3, x, y, hp) * 1.5;
        }
      }
      const i = (y * cv.w + x) * ch;
      for (let c = 0; c < ch; c++) {
        const bg = cv.px[i + c];
        const base = look.window ? bg + (look.window.center - bg) * contrast : bg + look.offset * contrast * (look.tint[c] ?? 1);
        // Keep the deciding detail legible: a base near black or white would clip its texture away.
        const room = 1.5 * amp;
        cv.px[i + c] = Math.min(Math.max(base, room), look.max - room) + amp * s;
      }
    }
  }
}
