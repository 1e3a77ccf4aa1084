// checkEnv: Gymnasium's check_env for MedGym envs. Runs a fixed script of good and bad actions
// and returns every problem found (an empty list means the env passed).
import { decode, encode, IMAGE_ID } from '../tokenizer';
import { isU8 } from '../tools/image';
import type { MedGymEnv } from './env';
import type { Observation, StepInfo, StepResult } from './types';

export class EnvCheckError extends Error {
  constructor(
    /** The problems checkEnv found, one line each. */
    readonly problems: string[],
  ) {
    super(`env check failed:\n  ${problems.join('\n  ')}`);
    this.name = 'EnvCheckError';
  }
}

function checkObs(where: string, o: Observation, env: MedGymEnv, p: string[]): void {
  if (typeof o.text !== 'string') return void p.push(`${where}: observation.text is not a string`);
  const t = encode(o.text);
  if (t.length !== o.tokens.length || t.some((v, i) => v !== o.tokens[i])) p.push(`${where}: observation.tokens differ from encode(text)`);
  if (decode(o.tokens) !== o.text) p.push(`${where}: decode(tokens) != text`);
  const nImg = o.tokens.filter((v) => v === IMAGE_ID).length;
  if (nImg !== o.images.length) p.push(`${where}: ${nImg} <|image|> tokens but ${o.images.length} images`);
  const { viewSize: S, viewChannels: C } = env.options;
  for (const [k, im] of o.images.entries()) {
    if (im.width !== S || im.height !== S || im.channels !== C || !isU8(im.data) || im.data.length !== S * S * C) {
      p.push(`${where}: image ${k} is ${im.width}x${im.height}x${im.channels} (${im.data?.length} bytes), expected ${S}x${S}x${C}`);
    }
  }
  const { width, height } = o.originalSize;
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) p.push(`${where}: bad originalSize`);
}

function checkInfo(where: string, i: StepInfo, p: string[]): void {
  if (typeof i.taskId !== 'string' || typeof i.modality !== 'string' || typeof i.questionType !== 'string') p.push(`${where}: info lacks taskId/modality/questionType`);
  if (!Array.isArray(i.toolCalls) || !Array.isArray(i.formatErrors)) p.push(`${where}: info lacks toolCalls/formatErrors`);
}

async function safeStep(env: MedGymEnv, a: string, where: string, p: string[]): Promise<StepResult | undefined> {
  try {
    const r = await env.step(a);
    checkObs(where, r.observation, env, p);
    checkInfo(where, r.info, p);
    if (!Number.isFinite(r.reward)) p.push(`${where}: reward ${r.reward} is not finite`);
    return r;
  } catch (err) {
    p.push(`${where}: step threw ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  }
}

const call = (name: string, args: unknown): string => `<tool_call>${JSON.stringify({ name, arguments: args })}</tool_call>`;

/** Checks env against the MedGym API contract; returns the problems found. */
export async function checkEnv(env: MedGymEnv, seed = 1234): Promise<string[]> {
  const p: string[] = [];
  const a = await env.reset({ seed });
  const b = await env.reset({ seed });
  checkObs('reset', a.observation, env, p);
  checkInfo('reset', a.info, p);
  if (a.observation.text !== b.observation.text || a.info.taskId !== b.info.taskId) p.push('reset: same seed gave a different episode');
  if (a.observation.images.some((im, k) => Buffer.compare(Buffer.from(im.data), Buffer.from(b.observation.images[k].data)) !== 0)) {
    p.push('reset: same seed gave different pixels');
  }
  if (!a.observation.text.startsWith('<|bos|>') || !a.observation.text.endsWith('\nassistant: ')) p.push('reset: prompt does not follow SPEC §3');
  if (a.observation.images.length !== 1) p.push('reset: prompt should carry exactly one image');

  const bad = ['', 'hello', '<tool_call>{"name": "zoom_in", "arguments": {"bbox": [1e308, -5, "x", null]}}</tool_call>', '<tool_call>{not json', '<answer>'];
  const good: [string, unknown, number][] = [
    ['view_original', {}, 1],
    ['zoom_in', { cell: 'B2' }, 1],
    ['zoom_in', { bbox: [-10, -10, 20, 30] }, 1],
    ['crop_multi', { bboxes: [{ cell: 'A1' }, { cell: 'C3', span: 2 }] }, 2],
    ['enhance', { method: 'equalize' }, 1],
    ['rotate', { angle: 90 }, 1],
    ['flip', { axis: 'vertical' }, 1],
  ];
  const steps: [string, number | undefined][] = [...bad.map((s): [string, undefined] => [s, undefined]), ...good.map(([n, args, k]): [string, number] => [call(n, args), k])];
  // maxTurns may be small: reset whenever the episode ends, then go on with the script.
  for (const [k, [action, nImages]] of steps.entries()) {
    const r = await safeStep(env, action, `action ${k}`, p);
    if (!r) break;
    if (r.terminated) p.push(`action ${k}: a non-answer ended the episode`);
    if (!r.truncated && !r.terminated) {
      if (!r.observation.text.startsWith('\n<tool_response>') || !r.observation.text.endsWith('</tool_response>\nassistant: ')) p.push(`action ${k}: response does not follow SPEC §3`);
      if (nImages !== undefined && r.observation.images.length !== nImages) p.push(`action ${k}: expected ${nImages} images, got ${r.observation.images.length} (${r.observation.text.slice(0, 120)})`);
      if (nImages === undefined && r.info.toolCalls.some((c) => c.ok && c.turn === r.info.turn)) p.push(`action ${k}: a bad call succeeded`);
    } else await env.reset();
  }
  await env.reset({ seed });
  const end = await safeStep(env, '<answer>A</answer><|eos|>', 'answer', p);
  if (end) {
    if (!end.terminated || end.truncated) p.push('answer: episode did not terminate');
    if (!end.info.groundTruth) p.push('answer: info lacks groundTruth after the episode');
    if (end.observation.text !== '' || end.observation.images.length) p.push('answer: final observation should be empty');
    if (!end.info.reward) p.push('answer: info lacks the reward breakdown');
  }
  let threw = false;
  try {
    await env.step('<answer>A</answer>');
  } catch {
    threw = true;
  }
  if (!threw) p.push('step after the end did not throw');
  await env.reset({ seed });
  let truncated = false;
  for (let k = 0; k < env.options.maxTurns + 1 && !truncated; k++) {
    const r = await safeStep(env, call('view_original', {}), `budget ${k}`, p);
    if (!r) break;
    truncated = r.truncated;
    if (r.truncated && !r.info.truncationReason) p.push('budget: truncated without a reason in info');
  }
  if (!truncated) p.push(`budget: no truncation after maxTurns=${env.options.maxTurns} tool turns`);
  return p;
}

/** checkEnv that throws EnvCheckError listing the problems. */
export async function assertEnv(env: MedGymEnv, seed = 1234): Promise<void> {
  const p = await checkEnv(env, seed);
  if (p.length) throw new EnvCheckError(p);
}
