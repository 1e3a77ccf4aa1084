// Example trajectories with the views the policy saw. trajectories.jsonl keeps every episode's ids
// and mask, and the env is deterministic in (env id, options, item index), so replaying the
// policy's segments (the mask-1 runs) through a fresh env re-renders exactly its views: no policy,
// no sampling. The replay checks every env response against the recorded ids and says so when they
// differ. Views are upscaled nearest-neighbour (64×64 views stay legible), the global view first
// with the zoomed regions (red) and the ground-truth box (green) drawn on it, then each tool view.
import * as fs from 'fs';
import * as path from 'path';
import * as readline from 'readline';
import sharp from 'sharp';
import { make, LETTERS, type MedGymEnv, type StepInfo, type ToolCallRecord } from '../env';
import { readHeaderSync } from '../io/safetensors_file';
import { configFromJson, POLICY_PRESETS } from '../policy/presets';
import { CHECKPOINT_LIMITS } from '../policy/checkpoint';
import type { Box, ViewImage } from '../tools/image';
import { parseTrainConfig, type TrainConfig } from '../train/config';
import { envOptions, trainEnvExtra } from '../train/envs';
import { openRunItems } from '../train/data';

/** The fields of a trajectories.jsonl line the examples use (src/train/run.ts trajectoryRecord). */
export interface TrajectoryRow {
  step: number;
  prompt: number;
  sample: number;
  item: number;
  modality: string;
  questionType: string;
  reward: number;
  correct: boolean;
  toolCalls: number;
  truncationReason?: string;
  promptTokens: number;
  text: string;
  tokens: number[];
  mask: number[];
}

export interface Replay {
  /** Views in the order the policy saw them: the prompt's global view, then each tool response's. */
  views: ViewImage[];
  /** Tool calls of the episode (boxes in original pixels). */
  toolCalls: ToolCallRecord[];
  question: string;
  options: string[];
  /** Letter (or text) of the right answer. */
  truth: string;
  gtBox?: Box;
  originalSize: { width: number; height: number };
  /** Every env response matched the recorded ids; otherwise `divergence` says where. */
  faithful: boolean;
  divergence?: string;
}

const sameIds = (a: ArrayLike<number>, b: ArrayLike<number>): boolean => a.length === b.length && Array.prototype.every.call(a, (v: number, i: number) => v === b[i]);

/** Replays the recorded episode `row` through `env` (built with the options the episode ran under). */
export async function replayEpisode(env: MedGymEnv, row: Pick<TrajectoryRow, 'item' | 'tokens' | 'mask'>): Promise<Replay> {
  const { tokens, mask } = row;
  const { observation, info: info0 } = await env.reset({ options: { index: row.item } });
  const views = [...observation.images];
  let info: StepInfo = info0;
  let divergence: string | undefined;
  let pos = observation.tokens.length;
  if (!sameIds(observation.tokens, tokens.slice(0, pos)) || mask.slice(0, pos).some((m) => m !== 0)) divergence = 'the prompt differs from the recorded one';
  while (!divergence && pos < tokens.length) {
    let end = pos;
    while (end < tokens.length && mask[end] === 1) end++;
    if (end === pos) {
      divergence = `recorded env tokens at position ${pos} where the policy's segment was expected`;
      break;
    }
    const r = await env.step(tokens.slice(pos, end));
    info = r.info;
    pos = end;
    if (r.terminated || r.truncated) {
      if (pos !== tokens.length) divergence = `the env ended the episode at position ${pos} of ${tokens.length}`;
      break;
    }
    // The record may stop here (the policy's context was full, 'max_seq'); otherwise the env's response follows.
    if (pos === tokens.length) break;
    const resp = tokens.slice(pos, pos + r.observation.tokens.length);
    if (!sameIds(r.observation.tokens, resp) || mask.slice(pos, pos + resp.length).some((m) => m !== 0)) {
      divergence = `the env's response at position ${pos} differs from the recorded one`;
      break;
    }
    pos += resp.length;
    views.push(...r.observation.images);
  }
  const item = env.currentItem()!;
  const truth = typeof item.answer === 'number' ? LETTERS[item.answer] : String(item.answer);
  return {
    views,
    toolCalls: info.toolCalls,
    question: item.question,
    options: [...item.options],
    truth,
    gtBox: item.box,
    originalSize: { width: item.image.width, height: item.image.height },
    faithful: divergence === undefined,
    divergence,
  };
}

/** The policy dimensions that sized the run's env (context and image positions): from its checkpoints, else its preset. */
export function policyDims(dir: string, cfg: TrainConfig): { imageTokens: number; maxSeq: number } {
  const files = [path.join(dir, 'sft.safetensors'), path.join(dir, 'final.safetensors'), ...(cfg.policy.init ? [cfg.policy.init] : [])];
  let pc = POLICY_PRESETS[cfg.policy.preset];
  for (const f of files) {
    if (!fs.existsSync(f)) continue;
    const meta = readHeaderSync(f, CHECKPOINT_LIMITS).metadata;
    if (meta.config) {
      pc = configFromJson(meta.config, f);
      break;
    }
  }
  return { imageTokens: (pc.imageSize / pc.patch) ** 2, maxSeq: pc.maxSeq };
}

/** An env like the run's GRPO training env (same id, options, trainModalities restriction and dataset, reopened and checked unchanged). */
export async function trainingEnv(dir: string, config: unknown): Promise<MedGymEnv> {
  const cfg = parseTrainConfig(config);
  const items = await openRunItems(cfg);
  return make(cfg.env.id, envOptions(cfg.env, policyDims(dir, cfg), { ...items.envExtra, ...trainEnvExtra(cfg.env) }));
}

/** The rows of the first and the last step in trajectories.jsonl (streamed: the file can be large). */
export async function firstAndLastStep(file: string): Promise<{ first: TrajectoryRow[]; last: TrajectoryRow[] }> {
  let first: TrajectoryRow[] = [];
  let last: TrajectoryRow[] = [];
  const lines = readline.createInterface({ input: fs.createReadStream(file, 'utf8'), crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line.trim()) continue;
    const r = JSON.parse(line) as TrajectoryRow;
    if (!first.length || r.step === first[0].step) first.push(r);
    if (!last.length || r.step !== last[0].step) last = [];
    last.push(r);
  }
  return { first, last };
}

export interface Example {
  row: TrajectoryRow;
  why: string;
}

const zooms = (r: TrajectoryRow): boolean => /"(zoom_in|crop_multi)"/.test(r.text);

/** Per step: one correct episode that zoomed (else any correct one with a tool call) and one wrong one (one with a tool call if any). */
export function pickExamples(steps: TrajectoryRow[][]): Example[] {
  const out: Example[] = [];
  const seen = new Set<number>();
  for (const rows of steps) {
    if (!rows.length || seen.has(rows[0].step)) continue;
    seen.add(rows[0].step);
    const right = rows.find((r) => r.correct && zooms(r)) ?? rows.find((r) => r.correct && r.toolCalls > 0);
    const wrong = rows.find((r) => !r.correct && r.toolCalls > 0) ?? rows.find((r) => !r.correct);
    if (right) out.push({ row: right, why: `correct, ${zooms(right) ? 'with a zoom' : 'with a tool call'}` });
    if (wrong) out.push({ row: wrong, why: wrong.toolCalls > 0 ? 'wrong, with a tool call' : 'wrong' });
  }
  return out;
}

const RED = [220, 30, 30];
const GREEN = [20, 170, 60];

/** RGB copy of a view, upscaled `k`× nearest-neighbour. */
function upscaleRgb(v: ViewImage, k: number): { data: Uint8Array; width: number; height: number } {
  const W = v.width * k;
  const H = v.height * k;
  const out = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const s = (Math.floor(y / k) * v.width + Math.floor(x / k)) * v.channels;
      const d = (y * W + x) * 3;
      for (let c = 0; c < 3; c++) out[d + c] = v.data[s + (v.channels === 3 ? c : 0)];
    }
  }
  return { data: out, width: W, height: H };
}

/** Draws the outline of `box` (original pixels) on a panel showing the whole original. */
function outline(p: { data: Uint8Array; width: number; height: number }, box: Box, orig: { width: number; height: number }, rgb: number[], t = 2): void {
  const sx = p.width / orig.width;
  const sy = p.height / orig.height;
  const x1 = Math.max(0, Math.round(box[0] * sx));
  const y1 = Math.max(0, Math.round(box[1] * sy));
  const x2 = Math.min(p.width, Math.round(box[2] * sx));
  const y2 = Math.min(p.height, Math.round(box[3] * sy));
  const put = (x: number, y: number): void => {
    if (x < 0 || y < 0 || x >= p.width || y >= p.height) return;
    p.data.set(rgb, (y * p.width + x) * 3);
  };
  for (let d = 0; d < t; d++) {
    for (let x = x1; x < x2; x++) {
      put(x, y1 + d);
      put(x, y2 - 1 - d);
    }
    for (let y = y1; y < y2; y++) {
      put(x1 + d, y);
      put(x2 - 1 - d, y);
    }
  }
}

/** The views side by side, `k`× nearest-neighbour, 8 px apart; the global view annotated. */
export async function examplePng(r: Replay, k = 4): Promise<Uint8Array> {
  const panels = r.views.map((v) => upscaleRgb(v, k));
  if (panels.length) {
    if (r.gtBox) outline(panels[0], r.gtBox, r.originalSize, GREEN);
    for (const c of r.toolCalls) if (c.ok && (c.name === 'zoom_in' || c.name === 'crop_multi')) for (const b of c.boxes) outline(panels[0], b, r.originalSize, RED);
  }
  const gap = 8;
  const W = Math.max(1, panels.reduce((s, p) => s + p.width, 0) + gap * Math.max(0, panels.length - 1));
  const H = Math.max(1, ...panels.map((p) => p.height));
  const out = new Uint8Array(W * H * 3).fill(255);
  let x0 = 0;
  for (const p of panels) {
    for (let y = 0; y < p.height; y++) out.set(p.data.subarray(y * p.width * 3, (y + 1) * p.width * 3), (y * W + x0) * 3);
    x0 += p.width + gap;
  }
  return sharp(Buffer.from(out.buffer, out.byteOffset, out.length), { raw: { width: W, height: H, channels: 3 } }).png().toBuffer();
}

/** Control bytes an untrained policy writes would make the markdown binary: shown as \xNN. */
const printable = (text: string): string => text.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
const fence = (text: string): string => (text.includes('```') ? '~~~~' : '```');
const callText = (c: ToolCallRecord): string => `${c.name || '(unparsed)'}${c.ok ? (c.boxes.length ? ` ${c.boxes.map((b) => `[${b.join(', ')}]`).join(' ')}` : '') : ' (error)'}`;

/**
 * Writes <rdir>/example_<i>.png for a few GRPO episodes (first and last logged step) and returns
 * the report's markdown lines and the PNGs by name. No trajectories or no replayable env: a note.
 */
export async function writeExamples(dir: string, config: unknown, rdir: string): Promise<{ lines: string[]; pngs: Record<string, Uint8Array> }> {
  const file = path.join(dir, 'trajectories.jsonl');
  if (!fs.existsSync(file) || fs.statSync(file).size === 0) return { lines: ['_No GRPO trajectories logged._'], pngs: {} };
  const { first, last } = await firstAndLastStep(file);
  const examples = pickExamples([first, last]);
  if (!examples.length) return { lines: ['_No example trajectories._'], pngs: {} };
  let env: MedGymEnv;
  try {
    env = await trainingEnv(dir, config);
  } catch (err) {
    return { lines: [`_Example trajectories not replayed: ${(err as Error).message.split('\n')[0]}._`], pngs: {} };
  }
  const lines: string[] = [
    'GRPO episodes of the first and the last logged step, re-rendered by replaying their recorded actions through the env (no policy run). ' +
      'Images: the views the policy saw, 4× nearest-neighbour; on the global view red = regions it zoomed into, green = the ground-truth box.',
    '',
  ];
  const pngs: Record<string, Uint8Array> = {};
  try {
    for (const [i, { row, why }] of examples.entries()) {
      const r = await replayEpisode(env, row);
      const name = `example_${i + 1}`;
      lines.push(
        `### GRPO step ${row.step}: ${why}`,
        '',
        `Item ${row.item} (${row.modality}, ${row.questionType}), prompt ${row.prompt} sample ${row.sample}: reward ${row.reward.toFixed(3)}, ${row.toolCalls} tool call(s)${row.truncationReason ? `, truncated (${row.truncationReason})` : ''}; right answer ${r.truth}.`,
        '',
        `Question: ${r.question} Options: ${r.options.map((o, k) => `${LETTERS[k]}. ${o}`).join('; ')}.`,
        '',
        fence(row.text),
        ...printable(row.text).split('\n'),
        fence(row.text),
        '',
      );
      if (!r.faithful) {
        lines.push(`_Replay diverged (${r.divergence}): views not shown._`, '');
        continue;
      }
      const png = await examplePng(r);
      fs.writeFileSync(path.join(rdir, `${name}.png`), png);
      pngs[name] = png;
      const calls = r.toolCalls.map(callText);
      const shown = r.views.length > 1 ? `the global view, then the ${r.views.length - 1} tool view(s) in order` : 'the global view';
      lines.push(`![${name}](report/${name}.png)`, '', `Tool calls: ${calls.length ? calls.join('; ') : 'none'}. Shown: ${shown}.`, '');
    }
  } finally {
    env.close();
  }
  return { lines, pngs };
}
