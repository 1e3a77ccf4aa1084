// The medgym-vlm engine: the scheduler's calls as GenerationSession calls (add with SPEC §7 keys,
// fork, generate({maxNewTokens: 1})). Keys pass through whole, the counter included.
import type { GenerationSession } from '../../policy/types';
import type { DecodeParams, EnginePrompt, EngineStep, ServeEngine } from './engine';
import type { ChoiceKey } from './sampling';

export class MedgymEngine implements ServeEngine {
  constructor(private readonly session: GenerationSession) {}

  prefill(prompts: EnginePrompt[]): Promise<number[]> {
    return this.session.add(prompts.map((p) => ({ tokens: p.tokens, images: p.images, key: p.key })));
  }

  fork(id: number, keys: ChoiceKey[]): Promise<number[]> {
    return this.session.fork(id, keys.length, keys);
  }

  async step(ids: number[], p: DecodeParams): Promise<EngineStep[]> {
    const outs = await this.session.generate(ids, { maxNewTokens: 1, temperature: p.temperature, topP: p.topP, stopTokens: p.stopTokens, bannedTokens: p.bannedTokens, stopStrings: [] });
    return outs.map((o) => ({ tokens: o.tokens, logp: o.logp, finishReason: o.finishReason }));
  }

  release(ids: number[]): void {
    this.session.release(ids);
  }

  dispose(): void {
    this.session.dispose();
  }
}
