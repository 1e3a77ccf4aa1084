// QwenEnvPolicy: a pretrained Qwen2-VL / Qwen2.5-VL model (QwenVLModel + its tokenizer) behind
// medgym's Policy interface, so that rollout() and evaluate() run it on the env unchanged. The
// translation of each session call is QwenEnvSession's (./env_session.ts); this file sizes the
// policy (imageTokens of the env's views, maxSeq) and builds the translation's fixed parts.
import type { Policy, SessionOptions } from '../../policy/types';
import { toolJsonSchemas } from '../../tools/schemas';
import { QwenVLModel } from './engine';
import { isInt, QwenEnvSession, type QwenEnvPolicyOptions, type QwenEnvSpec } from './env_session';
import { DEFAULT_QWEN_MAX_SEQ, loadQwenDir } from './load_dir';
import { mergedTokenCount, type PreprocessorConfig } from './preprocess';
import { QWEN_SYSTEM_PROMPT, toQwenTools } from './protocol';
import { QwenTokenizer } from './tokenizer';

export { QwenEnvProtocolError, QwenEnvSession } from './env_session';
export { DEFAULT_QWEN_MAX_SEQ, maxPositionEmbeddings } from './load_dir';
export type { QwenEnvPolicyOptions, QwenEnvSpec, QwenRenderChoices, QwenSessionLike } from './env_session';

/** Context positions of one viewSize × viewSize view: its merged tokens after smart_resize, plus <|vision_start|> / <|vision_end|>. */
export function qwenViewPositions(viewSize: number, p: PreprocessorConfig): number {
  return mergedTokenCount(viewSize, viewSize, p) + 2;
}

/**
 * A Qwen2-VL / Qwen2.5-VL model as a medgym Policy: rollout() and evaluate() run it on the env as they
 * run the native policy. It owns the model (dispose() frees it).
 *
 * - imageTokens: the positions of one env view (merged tokens + the two vision delimiters), from
 *   `viewSize`; maxSeq: the Qwen context (see QwenEnvPolicyOptions). The env budgets an episode in its
 *   own byte tokens, which are not Qwen's, so the session also checks the Qwen context itself: a turn
 *   that reaches it ends with finishReason 'max_seq', and a response that does not fit is not appended
 *   (the next generate() returns nothing with 'max_seq').
 * - Stop tokens: the model's end ids always (<|im_end|>, <|endoftext|>, the eos ids); medgym's
 *   </tool_call> → Qwen's `</tool_call>` token where the vocabulary has one (Qwen2.5 on); medgym's
 *   </answer> has no Qwen token (the model ends its turn with <|im_end|>). stopStrings are not supported.
 * - Banned tokens: control tokens other than the end ids and ids beyond the tokenizer are never sampled;
 *   medgym's <tool_call> (evaluation without tools) → Qwen's `<tool_call>` token, where there is one
 *   (`canBanToolCalls`; Qwen2-VL's original vocabulary has none: there the model may still spell a
 *   call, which the env then runs).
 * - GenerateResult.tokens are the medgym ids of the env action (qwenToEnvAction of the Qwen text);
 *   logp is all 0: per-token log-probs of the env-space action do not exist for a Qwen policy (the
 *   model sampled other ids). GRPO on Qwen needs the Qwen ids and their log-probs (the next step).
 */
export class QwenEnvPolicy implements Policy {
  readonly imageTokens: number;
  readonly maxSeq: number;
  private readonly spec: QwenEnvSpec;
  private model: QwenVLModel | undefined;

  private constructor(model: QwenVLModel, tokenizer: QwenTokenizer, o: QwenEnvPolicyOptions, maxSeqDefault: number) {
    const viewSize = o.viewSize ?? 64;
    if (!isInt(viewSize) || viewSize < 10) throw new RangeError(`Expected an integer >= 10 for viewSize but received ${String(o.viewSize)}`);
    const maxSeq = o.maxSeq ?? maxSeqDefault;
    if (!isInt(maxSeq) || maxSeq < 2) throw new RangeError(`Expected an integer >= 2 for maxSeq but received ${String(o.maxSeq)}`);
    this.model = model;
    this.maxSeq = maxSeq;
    this.imageTokens = qwenViewPositions(viewSize, model.preprocessor);
    const pre = model.preprocessor;
    this.spec = {
      tokenizer,
      vocabSize: model.config.text.vocabSize,
      padCount: (v) => mergedTokenCount(v.height, v.width, pre), // the size alone: the model preprocesses the view once, later
      maxSeq,
      systemPrompt: o.systemPrompt ?? QWEN_SYSTEM_PROMPT,
      tools: o.tools ?? toQwenTools(toolJsonSchemas()),
      render: o.render ?? {},
    };
    if (tokenizer.special.imagePad !== model.config.tokens.image) {
      throw new RangeError(`the tokenizer's <|image_pad|> is ${tokenizer.special.imagePad} but config.json's image_token_id is ${model.config.tokens.image}`);
    }
  }

  /** Wraps a loaded model and its tokenizer (the policy takes ownership of the model). */
  static create(model: QwenVLModel, tokenizer: QwenTokenizer, options: QwenEnvPolicyOptions = {}): QwenEnvPolicy {
    return new QwenEnvPolicy(model, tokenizer, options, DEFAULT_QWEN_MAX_SEQ);
  }

  /** Loads the model and the tokenizer of a Hugging Face model directory. */
  static async load(dir: string, options: QwenEnvPolicyOptions = {}): Promise<QwenEnvPolicy> {
    return loadQwenDir(dir, options.load, (model, tokenizer, maxSeqDefault) => new QwenEnvPolicy(model, tokenizer, options, maxSeqDefault));
  }


  get tokenizer(): QwenTokenizer {
    return this.spec.tokenizer;
  }

  /** The model (throws once disposed). */
  get qwen(): QwenVLModel {
    if (!this.model) throw new Error('QwenEnvPolicy: disposed');
    return this.model;
  }

  /** True when the vocabulary has a `<tool_call>` token, so that evaluation without tools can ban it. */
  get canBanToolCalls(): boolean {
    return this.spec.tokenizer.special.toolCallStart !== undefined;
  }

  createSession(options: SessionOptions = {}): QwenEnvSession {
    return new QwenEnvSession(this.spec, this.qwen.createSession(), options);
  }

  dispose(): void {
    this.model?.dispose();
    this.model = undefined;
  }
}
