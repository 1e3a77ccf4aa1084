// The GRPO update (grpoUpdate: forward with requireGrad → grpoLoss → backward, micro-batches of 32,
// one AdamW step) with each prompt's shared prefix computed once (grpo.sharePrefix, the default)
// vs every trajectory in full, on the same batch: 8 prompts × G 8 at MedVista-Synth-v0-like lengths
// (prompt ~370 positions with one 64-patch view, ~150 positions after it with one more view).
// The two are raced in alternating rounds on identical weights; ratio > 1: sharing is faster.
// Run: `npx tsx bench/run.ts grpo_update` (~20 s on 2 busy cores).
import { NativePolicy } from '../src/policy';
import { BOS_ID, IMAGE_ID } from '../src/tokenizer';
import { parseTrainConfig } from '../src/train/config';
import { grpoUpdate } from '../src/train/grpo';
import type { Trajectory } from '../src/rollout';
import { printTable } from './harness';

const PROMPTS = 8;
const G = 8;
const ROUNDS = 3;

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) >>> 8;
}

/** Prompt: <|bos|>, 150 text, a view, 155 text (370 positions); then 40 sampled, a 5-token env response + a view, 41 sampled (150). */
function trajectories(policy: NativePolicy): Trajectory[] {
  const { imageSize: S, channels: C } = policy.config;
  const rnd = lcg(3);
  const text = (n: number): number[] => Array.from({ length: n }, () => 32 + (rnd() % 90));
  const view = () => {
    const data = new Uint8Array(S * S * C);
    for (let i = 0; i < data.length; i++) data[i] = rnd() & 255;
    return { data, width: S, height: S, channels: C as 1 | 3 };
  };
  const out: Trajectory[] = [];
  for (let p = 0; p < PROMPTS; p++) {
    const prompt = [BOS_ID, ...text(150), IMAGE_ID, ...text(155)];
    const pv = view();
    for (let g = 0; g < G; g++) {
      const env = [...text(5), IMAGE_ID];
      const tokens = [...prompt, ...text(40), ...env, ...text(41)];
      const mask = Uint8Array.from(tokens, (_, i) => (i < prompt.length || (i >= prompt.length + 40 && i < prompt.length + 40 + env.length) ? 0 : 1));
      const oldLogp = Float32Array.from(mask, (m) => (m ? -Math.log(90) - 0.05 * ((rnd() % 100) / 100) : 0));
      const reward = (p + g) % 3 === 0 ? 1 : 0;
      out.push({
        promptIndex: p, sampleIndex: g, itemIndex: p, tokens, mask, oldLogp, images: [pv, view()], reward, components: {}, correct: reward > 0,
        wellFormed: true, answerStatus: 'answered', toolCalls: 1, toolErrors: 0, turns: 2, truncated: false, modality: 'x', questionType: 'y',
        generated: mask.reduce((a, b) => a + b, 0),
      });
    }
  }
  return out;
}

export async function run(): Promise<void> {
  const policy = NativePolicy.create('tiny', { seed: 0 });
  try {
    const trajs = trajectories(policy);
    const np = policy.imageTokens;
    const positions = trajs.reduce((s, t) => s + t.tokens.reduce((a, id) => a + (id === IMAGE_ID ? np : 1), 0), 0);
    const promptPositions = 1 + 150 + np + 155;
    let rows = 0;
    const forward = policy.forward.bind(policy);
    policy.forward = async (seqs, o) => {
      const r = await forward(seqs, o);
      rows += r.rows;
      return r;
    };
    const times: Record<'plain' | 'shared', number[]> = { plain: [], shared: [] };
    const metrics: Record<string, number> = {};
    for (let round = 0; round <= ROUNDS; round++) {
      for (const mode of ['plain', 'shared'] as const) {
        const c = parseTrainConfig({ grpo: { warmup: 0, lr: 1e-12, sharePrefix: mode === 'shared' } }).grpo;
        rows = 0;
        const t0 = performance.now();
        const m = await grpoUpdate(policy, null, trajs, 0, c);
        const ms = performance.now() - t0;
        if (round > 0) times[mode].push(ms); // round 0 warms up
        metrics[`${mode} rows`] = rows;
        metrics[`${mode} loss`] = m.loss;
      }
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const plain = med(times.plain);
    const shared = med(times.shared);
    printTable(
      `GRPO update, tiny (d128 L4), ${PROMPTS} prompts × G ${G}: ${positions} positions (prompt ${promptPositions}, ~${positions / trajs.length - promptPositions} after), micro-batches of 32, median of ${ROUNDS} alternating rounds`,
      ['path', 'rows computed', 'median ms', 'positions/s', 'speedup'],
      [
        ['every trajectory in full', metrics['plain rows'], plain, (positions / plain) * 1000, 1],
        ['shared prompts (sharePrefix)', metrics['shared rows'], shared, (positions / shared) * 1000, plain / shared],
      ],
    );
    console.log(`loss of the same batch (lr 1e-12: the weights stay put): full ${metrics['plain loss']}, shared ${metrics['shared loss']}`);
  } finally {
    policy.dispose();
  }
}
