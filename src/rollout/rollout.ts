// Multi-turn rollouts (SPEC §7): a generation session (KV cache, continuous batching) ↔ the vector
// env. Token in, token out: a trajectory is the env's prompt ids, the ids the policy sampled (mask 1,
// with their sampled logp = old_logp), the env's response ids (mask 0), exactly as generated. Each
// sequence samples from its own stream keyed (seed, step, promptIndex, sampleIndex), so batch size
// and finishing order change nothing. The G samples of a prompt see the same observation: it is
// prefilled once and forked into G sequences that share its KV cache (the same tokens and logp as
// G separate prefills, bit for bit).
import type { VectorEnv, StepInfo } from '../env';
import type { GenerationSession, Policy } from '../policy';
import { ANSWER_END_ID, EOS_ID, TOOL_CALL_END_ID, TOOL_CALL_ID } from '../tokenizer';
import { DEFAULT_BANNED_TOKENS as DEFAULT_BANNED } from '../policy';
import type { ViewImage } from '../tools/image';
import { zoomHit } from '../rewards';

export interface Trajectory {
  /** Prompt index in the batch and sample index in its group (the stream key with seed and step). */
  promptIndex: number;
  /** Sample index in the prompt's group (0..groupSize-1). */
  sampleIndex: number;
  /** Item index in the task source. */
  itemIndex: number;
  /** The whole episode's token ids: prompt, sampled actions and env responses, in order. */
  tokens: number[];
  /** 1 on tokens the policy sampled, 0 on prompt and env responses. */
  mask: Uint8Array;
  /** Sampled logp on mask-1 tokens (0 elsewhere). */
  oldLogp: Float32Array;
  /** Every image of the episode (the prompt's, then each tool response's), in order of their image tokens. */
  images: ViewImage[];
  /** The episode's total reward (0 when it ended at the model's context limit). */
  reward: number;
  /** The reward's components by name (from the env's reward breakdown). */
  components: Record<string, number>;
  /** The final answer was graded correct. */
  correct: boolean;
  /** Every segment was well formed and the episode answered. */
  wellFormed: boolean;
  /** The answer's grading status (an AnswerStatus), or 'none' when the episode never answered. */
  answerStatus: string;
  /** Tool calls made. */
  toolCalls: number;
  /** Tool calls that failed. */
  toolErrors: number;
  /** Turns taken. */
  turns: number;
  /** The episode was cut short (env budget or the model's context). */
  truncated: boolean;
  /** Why it was truncated: a TruncationReason, or 'max_seq' when the model's context filled. */
  truncationReason?: string;
  /** The item's imaging modality. */
  modality: string;
  /** The item's question type. */
  questionType: string;
  /** Tokens the policy generated. */
  generated: number;
  /** A zoom went to the finding (undefined when the item has no box). */
  zoomHit?: boolean;
}

export interface RolloutOptions {
  /** Sampling seed (SPEC §7 stream key). */
  seed: number;
  /** Training step (stream key). */
  step: number;
  /** Item index of each prompt. */
  items: number[];
  /** Samples per prompt (the vector env must hold items.length × groupSize sub-envs). */
  groupSize: number;
  /** 0 = greedy. */
  temperature: number;
  /** Nucleus sampling threshold in (0, 1] (default 1: off). */
  topP?: number;
  /** Most tokens the policy may generate per turn. */
  maxNewTokensPerTurn: number;
  /** Ban <tool_call> (evaluation without tools). */
  noTools?: boolean;
  /**
   * Prefill each prompt once and fork it into its G samples (default true). The trajectories are
   * identical either way; false prefills every sample's copy (for benchmarks and checks).
   */
  sharePrompts?: boolean;
  /** Accumulates wall seconds spent sampling (prefill + decode) and in the env (resets, tool calls). */
  timing?: RolloutTiming;
}

export interface RolloutTiming {
  sampleSeconds: number;
  envSeconds: number;
}

/** Runs items.length × groupSize episodes to the end; trajectory b = prompt ⌊b/G⌋, sample b mod G. */
export async function rollout(policy: Policy, vec: VectorEnv, o: RolloutOptions): Promise<Trajectory[]> {
  const G = o.groupSize;
  const B = o.items.length * G;
  if (B > vec.numEnvs) throw new RangeError(`Expected a vector env of at least ${B} sub-envs but it has ${vec.numEnvs}`);
  const envs = vec.envs.slice(0, B);
  const t0 = performance.now();
  const resets = await Promise.all(envs.map((e, b) => e.reset({ options: { index: o.items[Math.floor(b / G)] } })));
  const trajs: Trajectory[] = resets.map(({ observation, info }, b) => newTrajectory(b, G, o.items[Math.floor(b / G)], observation.tokens, observation.images, info));
  const mask: number[][] = resets.map((r) => r.observation.tokens.map(() => 0));
  const logp: number[][] = resets.map((r) => r.observation.tokens.map(() => 0));
  let mark = t0;
  const spent = (k: keyof RolloutTiming): void => {
    const now = performance.now();
    if (o.timing) o.timing[k] += (now - mark) / 1000;
    mark = now;
  };
  spent('envSeconds');
  const session = policy.createSession({ seed: o.seed });
  try {
    const ids = await addPrompts(session, resets.map((r) => r.observation), G, { seed: o.seed, step: o.step }, o.sharePrompts ?? true);
    const banned = [...DEFAULT_BANNED, ...(o.noTools ? [TOOL_CALL_ID] : [])];
    let active = [...Array(B).keys()];
    while (active.length > 0) {
      spent('sampleSeconds'); // prefill of the prompts or of the last responses
      const outs = await session.generate(
        active.map((b) => ids[b]),
        { maxNewTokens: o.maxNewTokensPerTurn, temperature: o.temperature, topP: o.topP ?? 1, stopTokens: [EOS_ID, TOOL_CALL_END_ID, ANSWER_END_ID], bannedTokens: banned },
      );
      spent('sampleSeconds');
      const results = await Promise.all(
        outs.map(async (out, j) => {
          const b = active[j];
          const t = trajs[b];
          for (let k = 0; k < out.tokens.length; k++) {
            t.tokens.push(out.tokens[k]);
            mask[b].push(1);
            logp[b].push(out.logp[k]);
          }
          t.generated += out.tokens.length;
          const r = await envs[b].step(out.tokens);
          return { b, r, maxSeq: out.finishReason === 'max_seq' };
        }),
      );
      spent('envSeconds');
      const next: number[] = [];
      const appends: { id: number; input: { tokens: number[]; images: ViewImage[] } }[] = [];
      for (const { b, r, maxSeq } of results) {
        const t = trajs[b];
        if (r.terminated || r.truncated) {
          finish(t, r.info, r.reward, r.truncated);
        } else if (maxSeq) {
          // The model's context is full but the env would go on: end the episode here, unrewarded.
          finish(t, r.info, 0, true, 'max_seq');
        } else {
          t.tokens.push(...r.observation.tokens);
          for (let k = 0; k < r.observation.tokens.length; k++) {
            mask[b].push(0);
            logp[b].push(0);
          }
          t.images.push(...r.observation.images);
          appends.push({ id: ids[b], input: { tokens: r.observation.tokens, images: r.observation.images } });
          next.push(b);
        }
      }
      if (appends.length) await session.append(appends);
      active = next;
    }
    spent('sampleSeconds');
  } finally {
    session.dispose();
  }
  trajs.forEach((t, b) => {
    t.mask = Uint8Array.from(mask[b]);
    t.oldLogp = Float32Array.from(logp[b]);
  });
  return trajs;
}

type PromptObs = { tokens: number[]; images: ViewImage[] };

function sameObservation(a: PromptObs, b: PromptObs): boolean {
  if (a.tokens.length !== b.tokens.length || a.images.length !== b.images.length) return false;
  if (a.tokens.some((t, k) => t !== b.tokens[k])) return false;
  return a.images.every((x, i) => {
    const y = b.images[i];
    return x.width === y.width && x.height === y.height && x.channels === y.channels && x.data.length === y.data.length && x.data.every((v, k) => v === y.data[k]);
  });
}

/**
 * Sequence handles for observations[b] (prompt ⌊b/G⌋, sample b mod G), keyed (seed, step, prompt,
 * sample). With `share`, a prompt whose G observations are identical is prefilled once and forked.
 */
async function addPrompts(session: GenerationSession, obs: PromptObs[], G: number, k: { seed: number; step: number }, share: boolean): Promise<number[]> {
  const key = (b: number) => ({ ...k, promptIndex: Math.floor(b / G), sampleIndex: b % G });
  const prompts = Math.ceil(obs.length / G);
  const shared = Array.from({ length: prompts }, (_, p) => share && obs.slice(p * G + 1, (p + 1) * G).every((x) => sameObservation(x, obs[p * G])));
  const single = obs.map((_, b) => b).filter((b) => !shared[Math.floor(b / G)]);
  const parents = shared.map((s, p) => (s ? p : -1)).filter((p) => p >= 0);
  const ids = new Array<number>(obs.length);
  const added = await session.add([...parents.map((p) => ({ ...obs[p * G], key: key(p * G) })), ...single.map((b) => ({ ...obs[b], key: key(b) }))]);
  single.forEach((b, i) => (ids[b] = added[parents.length + i]));
  for (let i = 0; i < parents.length; i++) {
    const p = parents[i];
    const n = Math.min(G, obs.length - p * G);
    const children = await session.fork(added[i], n, Array.from({ length: n }, (_, g) => key(p * G + g)));
    children.forEach((id, g) => (ids[p * G + g] = id));
  }
  if (parents.length) session.release(added.slice(0, parents.length));
  return ids;
}

function newTrajectory(b: number, G: number, itemIndex: number, tokens: number[], images: ViewImage[], info: StepInfo): Trajectory {
  return {
    promptIndex: Math.floor(b / G),
    sampleIndex: b % G,
    itemIndex,
    tokens: [...tokens],
    mask: new Uint8Array(0),
    oldLogp: new Float32Array(0),
    images: [...images],
    reward: 0,
    components: {},
    correct: false,
    wellFormed: false,
    answerStatus: 'none',
    toolCalls: 0,
    toolErrors: 0,
    turns: 0,
    truncated: false,
    modality: info.modality,
    questionType: info.questionType,
    generated: 0,
  };
}

function finish(t: Trajectory, info: StepInfo, reward: number, truncated: boolean, reason?: string): void {
  t.reward = reward;
  t.components = info.reward?.components ?? {};
  t.correct = reason ? false : (info.answer?.correct ?? false);
  t.wellFormed = reason ? false : (info.summary?.wellFormed ?? false);
  t.answerStatus = info.answer?.status ?? 'none';
  t.toolCalls = info.toolCalls.length;
  t.toolErrors = info.toolCalls.filter((c) => !c.ok).length;
  t.turns = info.turn;
  t.truncated = truncated;
  t.truncationReason = reason ?? info.truncationReason;
  t.zoomHit = info.summary ? zoomHit(info.summary) : undefined;
}
