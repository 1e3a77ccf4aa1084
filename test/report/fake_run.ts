// Fake run directories for the report tests: a config, metrics, evals built from seeded item
// outcomes (through the eval's own breakdown), and trajectories.jsonl rows recorded from scripted
// episodes through the env exactly as the trainer builds its GRPO env (makeTrainVec + trainEnvExtra).
import * as fs from 'fs';
import * as path from 'path';
import { LETTERS, type MedGymEnv } from '../../src/env';
import { breakdown, summarizeGroup, type EvalResult, type ItemOutcome } from '../../src/eval';
import { POLICY_PRESETS } from '../../src/policy/presets';
import { encode } from '../../src/tokenizer';
import type { ViewImage } from '../../src/tools/image';
import { parseTrainConfig, type TrainConfig } from '../../src/train/config';
import { makeTrainVec, trainEnvExtra } from '../../src/train/envs';
import { INDEX_BASE } from '../../src/rollout';
import type { TrajectoryRow } from '../../src/report';
import { Rng } from '../helpers/random';

export const MODS = ['ct', 'mri', 'xray', 'ultrasound', 'dermoscopy', 'fundus', 'oct', 'microscopy'];
export const QTYPES = ['modality', 'anatomy', 'diagnosis', 'grading', 'attribute'];

export function outcomes(seed: number, n: number, samples: number, pCorrect: number): ItemOutcome[] {
  const r = new Rng(seed);
  return Array.from({ length: n }, () => ({ modality: MODS[r.int(0, MODS.length)], questionType: QTYPES[r.int(0, QTYPES.length)], greedyCorrect: r.next() < pCorrect, c: r.int(0, samples + 1) }));
}

/** An EvalResult over the same items with and without tools (as the real eval: one index range). */
export function fakeEval(label: string, seed: number, n = 40, samples = 4): { result: EvalResult; tools: ItemOutcome[]; none: ItemOutcome[] } {
  const tools = outcomes(seed, n, samples, 0.5);
  const r = new Rng(seed + 1000);
  const none = tools.map((x) => ({ ...x, greedyCorrect: r.next() < 0.3, c: r.int(0, samples + 1) }));
  const mode = (xs: ItemOutcome[]) => ({ ...summarizeGroup(xs, samples), formatRate: 1, toolCallsPerEpisode: 1, noToolShare: 0, sampledAccuracy: 0.5, ...breakdown(xs, samples) });
  return { result: { label, items: n, samples, temperature: 1, withTools: mode(tools), withoutTools: mode(none) }, tools, none };
}

/** The env the trainer's GRPO phase uses for `cfg` (tiny preset dimensions). */
export function grpoEnv(cfg: TrainConfig): MedGymEnv {
  const p = POLICY_PRESETS[cfg.policy.preset];
  return makeTrainVec(cfg.env, 1, { imageTokens: (p.imageSize / p.patch) ** 2, maxSeq: p.maxSeq }, trainEnvExtra(cfg.env)).envs[0];
}

/**
 * Runs one scripted episode (zoom into `cells` in turn, then answer right or wrong) and records it
 * as trajectories.jsonl does: ids, mask (1 on the actions), text of the generated part. Also returns
 * the views the env produced.
 */
export async function recordEpisode(env: MedGymEnv, step: number, index: number, cells: string[], right: boolean): Promise<{ row: TrajectoryRow; views: ViewImage[]; modality: string }> {
  const { observation, info } = await env.reset({ options: { index } });
  const tokens = [...observation.tokens];
  const mask = tokens.map(() => 0);
  const views = [...observation.images];
  const item = env.currentItem()!;
  const answer = LETTERS[right ? (item.answer as number) : ((item.answer as number) + 1) % item.options.length];
  const actions = [...cells.map((c) => `<tool_call>{"name":"zoom_in","arguments":{"cell":"${c}"}}</tool_call>`), `<answer>${answer}</answer>`];
  let last = { reward: 0, correct: false, toolCalls: 0 };
  for (const a of actions) {
    const ids = encode(a);
    tokens.push(...ids);
    mask.push(...ids.map(() => 1));
    const r = await env.step(ids);
    if (r.terminated || r.truncated) {
      last = { reward: r.reward, correct: r.info.answer?.correct ?? false, toolCalls: r.info.toolCalls.length };
      break;
    }
    tokens.push(...r.observation.tokens);
    mask.push(...r.observation.tokens.map(() => 0));
    views.push(...r.observation.images);
  }
  const promptTokens = observation.tokens.length;
  const row: TrajectoryRow = {
    step, prompt: 0, sample: 0, item: index, modality: info.modality, questionType: info.questionType,
    reward: last.reward, correct: last.correct, toolCalls: last.toolCalls, promptTokens,
    text: actions.join('\n'), tokens, mask,
  };
  return { row, views, modality: info.modality };
}

export interface FakeRun {
  dir: string;
  cfg: TrainConfig;
  evalSft: EvalResult;
  evalFinal: EvalResult;
}

/** A run directory with everything the report reads; `steps` GRPO steps of two recorded episodes each. */
export async function writeFakeRun(dir: string, trainModalities: string[] | undefined, seed: number, steps = 2): Promise<FakeRun> {
  fs.mkdirSync(dir, { recursive: true });
  const cfg = parseTrainConfig({ out: dir, env: { id: 'MedVista-Synth-v0', trainModalities }, eval: { items: 40, samples: 4 }, grpo: { steps } });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg, null, 2));
  const metrics = [
    ...[0, 1, 2].map((s) => ({ phase: 'sft', step: s, loss: 3 - s, lr: 1e-3, gradNorm: 1, tokens: 100, time: s })),
    ...Array.from({ length: steps }, (_, s) => ({ phase: 'grpo', step: s, reward: 0.2 + 0.1 * s, accuracy: 0.2, formatRate: 1, toolCallsPerEpisode: 1, entropy: 1, approxKl: 0, kl: 0, clipFrac: 0, equalRewardGroups: 0, numGroups: 1, time: 3 + s })),
  ];
  fs.writeFileSync(path.join(dir, 'metrics.jsonl'), metrics.map((m) => JSON.stringify(m)).join('\n') + '\n');
  const evalSft = fakeEval('sft', seed).result;
  const evalFinal = fakeEval('final', seed + 1).result;
  fs.writeFileSync(path.join(dir, 'eval_sft.json'), JSON.stringify(evalSft));
  fs.writeFileSync(path.join(dir, 'eval_final.json'), JSON.stringify(evalFinal));
  const env = grpoEnv(cfg);
  const rows: TrajectoryRow[] = [];
  for (let s = 0; s < steps; s++) {
    const wrong = (await recordEpisode(env, s, INDEX_BASE.grpo + 2 * s, ['B2'], false)).row;
    // A control byte, as an untrained policy writes them (text is for reading; the replay uses the ids).
    rows.push({ ...wrong, text: `\x01${wrong.text}` });
    rows.push((await recordEpisode(env, s, INDEX_BASE.grpo + 2 * s + 1, ['C3', 'A1'], true)).row);
  }
  env.close();
  fs.writeFileSync(path.join(dir, 'trajectories.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return { dir, cfg, evalSft, evalFinal };
}
