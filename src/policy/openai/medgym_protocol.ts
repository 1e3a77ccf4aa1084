// The 'medgym-vlm' protocol (a medgym-vlm checkpoint behind `medgym serve`): token-exact. The conversation
// is the env's transcript as messages (./medgym_chat.ts), each sampled turn carried back as its ids, and
// every add/append checks that the messages render to exactly the ids the session holds. A request names
// the sequence's SPEC §7 stream and how many draws it made (the sampled tokens so far), so the server
// samples what a NativePolicy session with the same key would: the same seed gives the same episodes.
// Each sampled id comes with its log-prob (logprobs: true), so a served policy's turns carry the
// old_logp GRPO needs.
import type { FinishReason } from '../types';
import { VOCAB_SIZE } from '../../tokenizer';
import { HttpPolicyError } from './client';
import { assertRendersTo, envPromptMessages, envResponseMessages, sampledTurnMessage } from './medgym_chat';
import type { SeqState, TurnOptions, WireProtocol } from './session';
import type { ChatCompletionChoice, MedgymFinishReason } from './types';

const FINISH: readonly MedgymFinishReason[] = ['stop_token', 'stop_string', 'max_new_tokens', 'max_seq'];

export class MedgymVlmProtocol implements WireProtocol {
  constructor(private readonly url: string) {}

  promptMessages(tokens: number[], urls: string[]) {
    return envPromptMessages(tokens, urls);
  }

  responseMessages(st: SeqState, tokens: number[], urls: string[]) {
    return [st.pending!.message, ...envResponseMessages(tokens, urls)];
  }

  check(st: SeqState, what: string): void {
    assertRendersTo(st.messages, st.envTokens, st.images, what);
  }

  request(st: SeqState, o: TurnOptions) {
    return {
      messages: st.messages,
      max_tokens: o.maxNewTokens,
      temperature: o.temperature,
      top_p: o.topP,
      stop_token_ids: o.stopTokens,
      logit_bias: Object.fromEntries(o.bannedTokens.map((id) => [String(id), -100])),
      return_token_ids: true,
      logprobs: true,
      medgym_sample_key: { seed: st.key.seed, step: st.key.step, prompt_index: st.key.promptIndex, sample_index: st.key.sampleIndex, counter: st.counter },
    };
  }

  result(_st: SeqState, c: ChatCompletionChoice) {
    const ids = c.token_ids;
    if (!Array.isArray(ids)) throw new HttpPolicyError(`${this.url}: choices[0].token_ids is missing (a medgym-vlm server answers return_token_ids)`, this.url, 200, 'malformed');
    ids.forEach((t, k) => {
      if (!Number.isInteger(t) || t < 0 || t >= VOCAB_SIZE) throw new HttpPolicyError(`${this.url}: choices[0].token_ids[${k}] is ${JSON.stringify(t)}, not a token id in [0, ${VOCAB_SIZE})`, this.url, 200, 'malformed');
    });
    const tokens = [...ids];
    const lp = c.logprobs?.content;
    if (!Array.isArray(lp) || lp.length !== tokens.length || !lp.every((e) => e && typeof e.logprob === 'number' && e.logprob <= 0)) {
      throw new HttpPolicyError(`${this.url}: choices[0].logprobs.content must hold one log-prob (<= 0) per token id (a medgym-vlm server answers logprobs: true)`, this.url, 200, 'malformed');
    }
    const logp = lp.map((e) => e.logprob);
    const finishReason: FinishReason =
      c.medgym_finish_reason !== undefined && FINISH.includes(c.medgym_finish_reason) ? c.medgym_finish_reason : c.finish_reason === 'length' ? 'max_new_tokens' : 'stop_token';
    return { tokens, logp, finishReason, pending: { message: sampledTurnMessage(tokens), textCalls: 0, callIds: [] } };
  }
}
