// A Qwen2-VL / Qwen2.5-VL Hugging Face directory as the served model (protocol 'qwen2-vl'): the
// model's chat template (./qwen_prompt.ts), images of any size, its tokenizer's text (./qwen_text.ts),
// the model's end ids as stops always, control tokens never sampled, stream keys with counters.
import { QwenVLModel, type QwenLoadOptions } from '../../models/qwen2_vl/engine';
import { qwenViewPositions, type QwenRenderChoices } from '../../models/qwen2_vl/env_policy';
import { DEFAULT_QWEN_MAX_SEQ, loadQwenDir } from '../../models/qwen2_vl/load_dir';
import { qwenAlwaysBanned, qwenEndIds } from '../../models/qwen2_vl/turn_ids';
import { QwenTokenizer } from '../../models/qwen2_vl/tokenizer';
import type { MedgymModelInfo } from '../../policy/openai/types';
import type { ChoiceDecoder } from './choice_decoder';
import { QwenEngine } from './qwen_engine';
import { buildQwenPrompt, type QwenPromptSpec } from './qwen_prompt';
import { qwenDecoder } from './qwen_text';
import type { ChatRequest } from './request_schema';
import type { ModelSampling } from './sampling';
import type { Prompt, RequestLimits, ServedModel } from './served_model';

/** The env's default view side: /v1/models' image_tokens are the positions of one such view. */
export const DEFAULT_QWEN_VIEW_SIZE = 64;

export interface QwenServeOptions {
  /** Side of the square view whose positions /v1/models reports as image_tokens (default 64, the env's). */
  viewSize?: number;
  /** Context positions. Default min(config.json max_position_embeddings, 32768). */
  maxSeq?: number;
  /** Template choices passed to renderChat. */
  render?: QwenRenderChoices;
  /** load() only: how the weights are kept (dtype, decodeMath). */
  load?: QwenLoadOptions;
}

const positiveInt = (name: string, v: number, min: number): number => {
  if (!Number.isSafeInteger(v) || v < min) throw new RangeError(`Expected an integer >= ${min} for ${name} but received ${String(v)}`);
  return v;
};

export class QwenServedModel implements ServedModel {
  readonly info: MedgymModelInfo;
  readonly sampling: ModelSampling;
  readonly decoder: ChoiceDecoder;
  readonly deviceName = 'cpu';
  private readonly spec: QwenPromptSpec;
  private model: QwenVLModel | undefined;

  private constructor(model: QwenVLModel, tokenizer: QwenTokenizer, o: QwenServeOptions, maxSeqDefault: number) {
    if (tokenizer.special.imagePad !== model.config.tokens.image) {
      throw new RangeError(`the tokenizer's <|image_pad|> is ${tokenizer.special.imagePad} but config.json's image_token_id is ${model.config.tokens.image}`);
    }
    const viewSize = positiveInt('viewSize', o.viewSize ?? DEFAULT_QWEN_VIEW_SIZE, 10);
    const maxSeq = positiveInt('maxSeq', o.maxSeq ?? maxSeqDefault, 2);
    const vocabSize = model.config.text.vocabSize;
    // As QwenEnvSession: a turn ends at <|im_end|>, <|endoftext|> or an eos id; other control tokens
    // and ids the tokenizer has no text for are never sampled.
    const endIds = qwenEndIds(tokenizer);
    const banned = qwenAlwaysBanned(tokenizer, vocabSize, endIds);
    this.model = model;
    this.spec = { tokenizer, preprocessor: model.preprocessor, maxSeq, render: o.render ?? {} };
    this.decoder = qwenDecoder(tokenizer);
    this.info = { protocol: 'qwen2-vl', channels: 3, image_tokens: qwenViewPositions(viewSize, model.preprocessor), max_seq: maxSeq, vocab_size: vocabSize };
    this.sampling = { vocabSize, maxSeq, defaultStopTokens: [], requiredStopTokens: endIds, bannedTokens: banned };
  }

  /** Wraps a loaded model and its tokenizer (takes ownership of the model). */
  static create(model: QwenVLModel, tokenizer: QwenTokenizer, options: QwenServeOptions = {}): QwenServedModel {
    return new QwenServedModel(model, tokenizer, options, DEFAULT_QWEN_MAX_SEQ);
  }

  /** Loads the model and tokenizer of a Hugging Face directory (config.json, safetensors, tokenizer files). */
  static async load(dir: string, options: QwenServeOptions = {}): Promise<QwenServedModel> {
    return loadQwenDir(dir, options.load, (model, tokenizer, maxSeqDefault) => new QwenServedModel(model, tokenizer, options, maxSeqDefault));
  }


  get tokenizer(): QwenTokenizer {
    return this.spec.tokenizer;
  }

  private get qwen(): QwenVLModel {
    if (!this.model) throw new Error('QwenServedModel: disposed');
    return this.model;
  }

  buildPrompt(req: ChatRequest, limits: RequestLimits): Promise<Prompt> {
    return buildQwenPrompt(req, this.spec, limits);
  }

  createEngine(): QwenEngine {
    return new QwenEngine(this.qwen.createSession());
  }

  dispose(): void {
    this.model?.dispose();
    this.model = undefined;
  }
}
