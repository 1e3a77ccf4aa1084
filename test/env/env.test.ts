import { SynthDataset } from '../../src/data/synth';
import { checkEnv, expertPolicy, type ScriptedPolicy, listEnvs, make, makeVec, MedGymEnv, readerPolicy, runEpisode, guessPolicy, type StepInfo } from '../../src/env';
import type { Dataset, VqaItem } from '../../src/data/types';
import { batchStats, composeRewards } from '../../src/rewards';
import { encode, IMAGE_ID } from '../../src/tokenizer';

const zoomB2 = '<tool_call>{"name": "zoom_in", "arguments": {"cell": "B2"}}</tool_call>';
const answerOf = (info: StepInfo): string => `<answer>${info.groundTruth!.letter}</answer><|eos|>`;

/** A three-item in-memory dataset (what a loader would give). */
export const tinyDataset = (): Dataset => {
  const img = (v: number) => ({ data: new Uint8Array(32 * 32).fill(v), width: 32, height: 32, channels: 1 as const, bitDepth: 8 as const });
  const items: VqaItem[] = [0, 1, 2].map((k) => ({ id: `tiny/${k}`, image: img(40 * k), question: 'Is it bright?', options: ['yes', 'no'], answer: k % 2, modality: 'xray', questionType: 'closed' }));
  return {
    name: 'tiny',
    size: items.length,
    get: async (i) => items[i],
    stream: async function* () {
      yield* items;
    },
  };
};

describe('MedGymEnv', () => {
  test('reset: SPEC §3 prompt, one view, tokens of the text, no ground truth yet', async () => {
    const env = make('MedVista-Synth-v0');
    const { observation: o, info } = await env.reset({ seed: 5 });
    expect(o.text.startsWith('<|bos|>')).toBe(true);
    expect(o.text).toMatch(/\nuser: <\|image\|>\n[^]*\nA\. [^]*\nImage size: 256x256 pixels\.\nassistant: $/);
    expect(o.tokens).toEqual(encode(o.text));
    expect(o.tokens.filter((t) => t === IMAGE_ID)).toHaveLength(1);
    expect(o.images).toHaveLength(1);
    expect(o.images[0]).toMatchObject({ width: 64, height: 64, channels: 3 });
    expect(o.originalSize).toEqual({ width: 256, height: 256 });
    expect(info.groundTruth).toBeUndefined();
    expect(info.taskId).toMatch(/^medvista-synth-v0\//);
  });

  test('a tool call: response text and view, recorded in info; the episode goes on', async () => {
    const env = make('MedVista-Synth-v0');
    await env.reset({ seed: 5 });
    const r = await env.step(zoomB2);
    expect(r.terminated || r.truncated).toBe(false);
    expect(r.reward).toBe(0);
    expect(r.observation.text).toBe('\n<tool_response>zoom_in [64, 64, 128, 128]<|image|></tool_response>\nassistant: ');
    expect(r.observation.images).toHaveLength(1);
    expect(r.info.toolCalls).toEqual([{ turn: 1, name: 'zoom_in', ok: true, error: undefined, boxes: [[64, 64, 128, 128]] }]);
    const bad = await env.step('<tool_call>{"name": "zoom_in", "arguments": {"bbox": [1, 2, "abc", 4]}}</tool_call>');
    expect(bad.observation.text).toBe("\n<tool_response>error: Expected number for bbox[2] but received 'abc' of type string</tool_response>\nassistant: ");
    expect(bad.info.toolCalls[1]).toMatchObject({ ok: false, name: 'zoom_in' });
    const two = await env.step(`${zoomB2}${zoomB2}`);
    expect(two.observation.images).toHaveLength(2);
    expect(two.observation.text.match(/<tool_response>/g)).toHaveLength(2);
    expect(two.observation.text.match(/assistant: /g)).toHaveLength(1);
  });

  test('answer: terminated, reward = accuracy + 0.1 format, ground truth revealed after the end', async () => {
    const env = make('MedVista-Synth-v0', { revealGroundTruth: true });
    const { info } = await env.reset({ seed: 8 });
    await env.step(zoomB2);
    const r = await env.step(answerOf(info));
    expect(r.terminated).toBe(true);
    expect(r.truncated).toBe(false);
    expect(r.reward).toBeCloseTo(1.1);
    expect(r.info.answer).toMatchObject({ status: 'ok', correct: true });
    expect(r.observation).toMatchObject({ text: '', tokens: [], images: [] });
    await expect(env.step('<answer>A</answer>')).rejects.toThrow(/reset/);

    const plain = make('MedVista-Synth-v0');
    await plain.reset({ seed: 8 });
    const wrong = await plain.step('<answer>A or B</answer><|eos|>');
    expect(wrong.info.answer?.status).toBe('multiple');
    expect(wrong.info.reward?.components.accuracy).toBe(0);
    expect(wrong.info.groundTruth?.letter).toBe(info.groundTruth!.letter);
  });

  test('a failed tool call or stray text costs the format reward, not the episode', async () => {
    const env = make('MedVista-Synth-v0', { revealGroundTruth: true });
    const { info } = await env.reset({ seed: 8 });
    await env.step('<tool_call>{"name": "zoom_in", "arguments": {"cell": "Z9"}}</tool_call>');
    const r = await env.step(answerOf(info));
    expect(r.info.reward?.components).toMatchObject({ accuracy: 1, format: 0 });
    await env.reset({ seed: 8 });
    const s = await env.step(`I think ${answerOf(info)}`);
    expect(s.info.reward?.components).toMatchObject({ accuracy: 1, format: 0 });
  });

  test('budgets truncate with the reason in info; token ids are accepted as actions', async () => {
    const turns = make('MedVista-Synth-v0', { maxTurns: 2 });
    await turns.reset({ seed: 1 });
    expect((await turns.step(zoomB2)).truncated).toBe(false);
    const t = await turns.step(zoomB2);
    expect([t.truncated, t.terminated, t.info.truncationReason]).toEqual([true, false, 'max_turns']);
    const perTurn = make('MedVista-Synth-v0', { maxNewTokensPerTurn: 20 });
    await perTurn.reset({ seed: 1 });
    expect((await perTurn.step(encode(zoomB2))).info.truncationReason).toBe('max_new_tokens');
    const total = make('MedVista-Synth-v0', { maxTotalTokens: 700, imageTokens: 64 });
    const { info } = await total.reset({ seed: 1 });
    expect(info.totalTokens).toBe(encode((await total.reset({ seed: 1 })).observation.text).length + 63);
    let r = await total.step(zoomB2);
    while (!r.truncated) r = await total.step(zoomB2);
    expect(r.info.truncationReason).toBe('max_total_tokens');
    expect(r.reward).toBe(0);
  });

  test('same seed → same episodes, views and rewards; episode stream continues without a seed', async () => {
    const run = async () => {
      const env = make('MedVista-Synth-v0', { revealGroundTruth: true });
      const out: unknown[] = [];
      for (let e = 0; e < 4; e++) {
        const r = await runEpisode(env, expertPolicy(), e === 0 ? { seed: 77 } : {});
        out.push([r.info.taskId, r.reward, r.info.toolCalls]);
      }
      const { observation } = await env.reset({ seed: 77 });
      return { out, px: Buffer.from(observation.images[0].data).toString('base64') };
    };
    const [a, b] = [await run(), await run()];
    expect(a).toEqual(b);
    expect(new Set(a.out.map((x) => (x as string[])[0])).size).toBe(4);
  });

  test('expert (zoom, read pixels) ≫ the same reader on the global view, on small findings', async () => {
    // Items are generated once and shared by the four policies (same seeds → same items).
    const synth = new SynthDataset({ easyFraction: 0, questionTypes: ['attribute', 'diagnosis'] });
    const memo = new Map<number, Promise<VqaItem>>();
    const dataset: Dataset = { name: synth.name, size: synth.size, stream: (o) => synth.stream(o), get: (i) => memo.get(i) ?? memo.set(i, synth.get(i)).get(i)! };
    const env = make('MedGym-Dataset-v0', { dataset, revealGroundTruth: true });
    const n = 40;
    const acc = async (p: ScriptedPolicy, episodes = n) => {
      let c = 0;
      for (let i = 0; i < episodes; i++) c += (await runEpisode(env, p, { seed: 500 + i })).info.answer!.correct ? 1 : 0;
      return c / episodes;
    };
    const zoom = await acc(readerPolicy({ zoom: true }));
    const global = await acc(readerPolicy({ zoom: false }));
    // chance 0.25 (SE 0.068 at n = 40): the global reader must stay within 3 SE of it.
    expect(zoom).toBeGreaterThan(0.85);
    expect(global).toBeLessThan(0.45);
    expect(await acc(expertPolicy())).toBe(1);
    const demo = await runEpisode(env, expertPolicy({ think: true }), { seed: 500 });
    expect(demo.info.formatErrors).toEqual([]);
    expect(demo.reward).toBeCloseTo(1.1);
    expect(await acc(guessPolicy())).toBeLessThan(0.45);
  });

  test('rewards compose with weights; tool, iou and custom components; per-batch stats', async () => {
    const env = make('MedVista-Synth-Small-v0', { revealGroundTruth: true, rewards: { tool: 0.5, iou: 1, bonus: { fn: (e) => e.toolCalls, weight: 0.01 } } });
    const r = await runEpisode(env, expertPolicy({ useBbox: true }), { seed: 3 });
    expect(r.info.reward!.components).toMatchObject({ accuracy: 1, format: 1, tool: 1, iou: 1 });
    expect(r.reward).toBeCloseTo(1 + 0.1 + 0.5 + 1 + 0.01 * r.info.toolCalls.length);
    expect(() => composeRewards({ nonsense: 1 })).toThrow(/Unknown reward/);
    const g = await runEpisode(env, guessPolicy(), { seed: 3 });
    const stats = batchStats([r, g].map((x) => ({ summary: x.info.summary!, reward: x.info.reward! })));
    expect(stats.noToolAnswerShare).toBe(0.5);
    expect(stats.episodes).toBe(2);
  });

  test('overlapping calls on one env are refused, not interleaved', async () => {
    const env = make('MedVista-Synth-v0');
    await env.reset({ seed: 1 });
    const first = env.step(zoomB2);
    await expect(env.step(zoomB2)).rejects.toThrow(/still running/);
    expect((await first).info.toolCalls).toHaveLength(1);
  });

  test('registry: unknown ids name the registered ones; dataset env needs a dataset', () => {
    expect(() => make('Nope-v0')).toThrow(/registered: MedVista-Synth-v0/);
    expect(() => make('MedGym-Dataset-v0')).toThrow(/options.dataset/);
    expect(listEnvs().length).toBeGreaterThanOrEqual(5);
  });

  test.each(listEnvs().map((s) => s.id))('checkEnv passes on %s', async (id) => {
    const env = make(id, id === 'MedGym-Dataset-v0' ? { dataset: tinyDataset() } : {});
    expect(await checkEnv(env)).toEqual([]);
  });

  test('checkEnv catches a broken env', async () => {
    class Broken extends MedGymEnv {
      override async reset(a: { seed?: number } = {}) {
        const r = await super.reset(a);
        return { ...r, observation: { ...r.observation, tokens: r.observation.tokens.slice(1) } };
      }
    }
    const problems = await checkEnv(new Broken());
    expect(problems.join('\n')).toMatch(/tokens differ/);
  });
});

describe('VectorEnv', () => {
  test('steps all sub-envs, autoresets on the next step, reports batch stats', async () => {
    const vec = makeVec('MedVista-Synth-v0', 3, { revealGroundTruth: true });
    const { observations, infos } = await vec.reset({ seed: 10 });
    expect(observations).toHaveLength(3);
    expect(new Set(infos.map((i) => i.taskId)).size).toBe(3);
    const solo = make('MedVista-Synth-v0');
    expect((await solo.reset({ seed: 11 })).info.taskId).toBe(infos[1].taskId);
    // env 0 answers now, the others zoom.
    const s1 = await vec.step([answerOf(infos[0]), zoomB2, zoomB2]);
    expect(s1.terminated).toEqual([true, false, false]);
    expect(s1.rewards[0]).toBeCloseTo(1.1);
    const s2 = await vec.step(['ignored', answerOf(infos[1]), zoomB2]);
    expect(s2.infos[0].autoreset).toBe(true);
    expect(s2.rewards[0]).toBe(0);
    expect(s2.observations[0].text.startsWith('<|bos|>')).toBe(true);
    expect(s2.terminated).toEqual([false, true, false]);
    const stats = vec.drainStats();
    expect(stats.episodes).toBe(2);
    expect(stats.accuracy).toBe(1);
    expect(stats.noToolAnswerShare).toBe(0.5);
    expect(Object.values(stats.byModality).reduce((n, g) => n + g.episodes, 0)).toBe(2);
    expect(stats.byQuestionType[infos[0].questionType].accuracy).toBe(1);
    expect(vec.drainStats().episodes).toBe(0);
    const grouped = await vec.reset({ seed: 3, indices: [5, 5, 9] });
    expect(grouped.infos[0].taskId).toBe(grouped.infos[1].taskId);
    expect(grouped.infos[2].taskId).not.toBe(grouped.infos[0].taskId);
    await expect(vec.step(['x'])).rejects.toThrow(/Expected 3 actions/);
  });
});
