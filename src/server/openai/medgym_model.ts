// A medgym-vlm policy (NativePolicy) as the served model: SPEC §1 ids rendered by renderMedgymChat
// (./prompt.ts), square views of the checkpoint's size, the native rollout's default stops and bans,
// stream keys with counters (token-exact multi-turn).
import type { MedgymModelInfo } from '../../policy/openai/types';
import { DEFAULT_BANNED_TOKENS, DEFAULT_STOP_TOKENS } from '../../policy/session';
import type { Policy, PolicyConfig, PolicyDeviceInfo } from '../../policy/types';
import { medgymDecoder } from './choice_decoder';
import { MedgymEngine } from './medgym_engine';
import { buildPrompt } from './prompt';
import type { ChatRequest } from './request_schema';
import type { Prompt, RequestLimits, ServedModel } from './served_model';
import type { ModelSampling } from './sampling';

/** What the server needs of the policy: NativePolicy fits. */
export interface ServablePolicy extends Policy {
  readonly config: PolicyConfig;
  readonly deviceInfo?: PolicyDeviceInfo;
}

export class MedgymServedModel implements ServedModel {
  readonly info: MedgymModelInfo;
  readonly sampling: ModelSampling;
  readonly decoder = medgymDecoder;

  /** Takes ownership of the policy (dispose() frees it). */
  constructor(private readonly policy: ServablePolicy) {
    const c = policy.config;
    this.info = { protocol: 'medgym-vlm', image_size: c.imageSize, channels: c.channels, image_tokens: policy.imageTokens, max_seq: c.maxSeq, vocab_size: c.vocabSize };
    this.sampling = {
      vocabSize: c.vocabSize,
      maxSeq: policy.maxSeq,
      defaultStopTokens: DEFAULT_STOP_TOKENS,
      requiredStopTokens: [],
      bannedTokens: DEFAULT_BANNED_TOKENS,
    };
  }

  get deviceName(): string {
    return this.policy.deviceInfo?.name ?? 'cpu';
  }

  buildPrompt(req: ChatRequest, limits: RequestLimits): Promise<Prompt> {
    const c = this.policy.config;
    return buildPrompt(req.messages, { ...limits, maxSeq: this.policy.maxSeq, imageTokens: this.policy.imageTokens, imageSize: c.imageSize, channels: c.channels });
  }

  createEngine(): MedgymEngine {
    return new MedgymEngine(this.policy.createSession());
  }

  dispose(): void {
    this.policy.dispose();
  }
}
