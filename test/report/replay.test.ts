// Example trajectories: replaying a recorded episode's actions through the env built from the run's
// config re-renders exactly the views the episode produced (pixel for pixel), including a run
// trained on a subset of modalities; a record that does not match the env is reported, not drawn;
// the example PNG holds the views upscaled nearest-neighbour with the boxes on the global view.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { examplePng, firstAndLastStep, pickExamples, replayEpisode, trainingEnv, type TrajectoryRow } from '../../src/report';
import { parseTrainConfig } from '../../src/train/config';
import { INDEX_BASE } from '../../src/rollout';
import { grpoEnv, recordEpisode } from './fake_run';

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-replay-'));
afterAll(() => fs.rmSync(TMP, { recursive: true, force: true }));

const same = (a: { data: Uint8Array; width: number; height: number; channels: number }, b: typeof a): boolean =>
  a.width === b.width && a.height === b.height && a.channels === b.channels && Buffer.compare(Buffer.from(a.data), Buffer.from(b.data)) === 0;

test.each([
  ['all modalities', undefined],
  ['a subset (trainModalities)', ['fundus', 'oct']],
])('replay renders the views of the original episode: %s', async (_, trainModalities) => {
  const cfg = parseTrainConfig({ env: { id: 'MedVista-Synth-v0', trainModalities }, policy: { preset: 'tiny' } });
  const orig = grpoEnv(cfg);
  const replayEnv = await trainingEnv(TMP, JSON.parse(JSON.stringify(cfg)));
  for (let k = 0; k < 3; k++) {
    const { row, views, modality } = await recordEpisode(orig, 0, INDEX_BASE.grpo + 17 + k, k === 0 ? [] : ['B2', 'D4'].slice(0, k), k % 2 === 0);
    if (trainModalities) expect(trainModalities).toContain(modality);
    const r = await replayEpisode(replayEnv, row);
    expect(r.faithful).toBe(true);
    expect(r.views).toHaveLength(1 + k);
    expect(views).toHaveLength(1 + k);
    r.views.forEach((v, i) => expect(same(v, views[i])).toBe(true));
    expect(replayEnv.currentItem()!.modality).toBe(modality);
    expect(r.toolCalls.map((c) => c.name)).toEqual(Array(k).fill('zoom_in'));
  }
  orig.close();
  replayEnv.close();
});

test('a record the env does not reproduce is flagged, with where it differs', async () => {
  const cfg = parseTrainConfig({ env: { id: 'MedVista-Synth-v0', trainModalities: ['ct'] } });
  const env = grpoEnv(cfg);
  const { row } = await recordEpisode(env, 0, INDEX_BASE.grpo + 3, ['A1'], true);
  // The env's first response comes right after the first action (the first mask-1 run).
  const firstAction = row.mask.indexOf(1);
  let respStart = firstAction;
  while (row.mask[respStart] === 1) respStart++;
  const tampered = { ...row, tokens: row.tokens.map((t, i) => (i === respStart + 2 ? (t === 65 ? 66 : 65) : t)) };
  const r = await replayEpisode(env, tampered);
  expect(r.faithful).toBe(false);
  expect(r.divergence).toMatch(new RegExp(`response at position ${respStart}`));
  // Replaying under another config (all modalities) draws another item: the prompt differs.
  const other = await trainingEnv(TMP, parseTrainConfig({}));
  const flags: boolean[] = [];
  for (let k = 0; k < 6; k++) flags.push((await replayEpisode(other, (await recordEpisode(env, 0, INDEX_BASE.grpo + 40 + k, [], true)).row)).faithful);
  expect(flags.some((f) => !f)).toBe(true);
  env.close();
  other.close();
});

test('example PNG: views side by side at 4x nearest-neighbour, zoom box red on the global view', async () => {
  const cfg = parseTrainConfig({});
  const env = grpoEnv(cfg);
  const { row } = await recordEpisode(env, 0, INDEX_BASE.grpo + 5, ['C2'], true);
  const r = await replayEpisode(env, row);
  const { data, info } = await sharp(await examplePng(r)).raw().toBuffer({ resolveWithObject: true });
  const V = r.views[0].width;
  expect(info.height).toBe(4 * V);
  expect(info.width).toBe(2 * 4 * V + 8);
  const px = (x: number, y: number): number[] => Array.from(data.subarray((y * info.width + x) * info.channels, (y * info.width + x) * info.channels + 3));
  // The zoom view (second panel) is the view upscaled, pixel for pixel.
  const z = r.views[1];
  for (let y = 0; y < 4 * V; y += 3) {
    for (let x = 0; x < 4 * V; x += 5) {
      const s = (Math.floor(y / 4) * z.width + Math.floor(x / 4)) * z.channels;
      const want = z.channels === 3 ? [z.data[s], z.data[s + 1], z.data[s + 2]] : [z.data[s], z.data[s], z.data[s]];
      expect(px(4 * V + 8 + x, y)).toEqual(want);
    }
  }
  // C2 = column C, row 2 of a 4x4 grid: its top-left corner on the global panel is red.
  const box = r.toolCalls[0].boxes[0];
  const s = (4 * V) / r.originalSize.width;
  expect(px(Math.round(box[0] * s), Math.round(box[1] * s))).toEqual([220, 30, 30]);
  env.close();
});

test('examples: first and last logged step; a correct episode that zoomed and a wrong one per step', async () => {
  const row = (step: number, correct: boolean, text: string, toolCalls: number): TrajectoryRow => ({ step, prompt: 0, sample: 0, item: step, modality: 'ct', questionType: 'grading', reward: +correct, correct, toolCalls, promptTokens: 0, text, tokens: [], mask: [] });
  const zoom = '<tool_call>{"name":"zoom_in","arguments":{"cell":"A1"}}</tool_call>';
  const rows = [row(0, true, '<answer>A</answer>', 0), row(0, false, zoom, 1), row(0, true, zoom, 1), row(5, false, '<answer>B</answer>', 0), row(9, false, '<answer>B</answer>', 0), row(9, true, zoom, 1)];
  const file = path.join(TMP, 'trajectories.jsonl');
  fs.writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const { first, last } = await firstAndLastStep(file);
  expect(first).toEqual(rows.slice(0, 3));
  expect(last).toEqual(rows.slice(4));
  const ex = pickExamples([first, last]);
  expect(ex.map((e) => [e.row.step, e.row.correct, e.row.toolCalls, e.why])).toEqual([
    [0, true, 1, 'correct, with a zoom'],
    [0, false, 1, 'wrong, with a tool call'],
    [9, true, 1, 'correct, with a zoom'],
    [9, false, 0, 'wrong'],
  ]);
  // One logged step: picked once.
  expect(pickExamples([first, first])).toHaveLength(2);
});
