// The Qwen2-VL / Qwen2.5-VL engine: the scheduler's calls as QwenSession calls. Keys pass through
// whole, the counter included (a prompt resumes its stream where earlier turns left it; forks go on
// from their parent's draws). Context limits are the scheduler's (the plan caps max_tokens to what
// fits), so a step never reports 'max_seq' itself.
import type { QwenSampleKey, QwenSession } from '../../models/qwen2_vl/session';
import type { DecodeParams, EnginePrompt, EngineStep, ServeEngine } from './engine';
import type { ChoiceKey } from './sampling';

const qwenKey = (k: ChoiceKey): QwenSampleKey => ({ seed: k.seed, step: k.step, promptIndex: k.promptIndex, sampleIndex: k.sampleIndex, counter: k.counter });

export class QwenEngine implements ServeEngine {
  constructor(private readonly session: QwenSession) {}

  prefill(prompts: EnginePrompt[]): Promise<number[]> {
    return this.session.add(
      prompts.map((p) => ({ ids: p.tokens, images: p.images })),
      prompts.map((p) => qwenKey(p.key)),
    );
  }

  fork(id: number, keys: ChoiceKey[]): Promise<number[]> {
    // Children go on from their parent's draws: fork ignores a key's counter.
    return this.session.fork(id, keys.length, keys.map(qwenKey));
  }

  async step(ids: number[], p: DecodeParams): Promise<EngineStep[]> {
    const outs = await this.session.generate(ids, { maxNewTokens: 1, temperature: p.temperature, topP: p.topP, stopTokens: p.stopTokens, bannedTokens: p.bannedTokens });
    return outs.map((o) => ({ tokens: o.tokens, logp: o.logp, finishReason: o.finishReason }));
  }

  release(ids: number[]): void {
    this.session.release(ids);
  }

  dispose(): void {
    this.session.dispose();
  }
}
