// Loading a Hugging Face Qwen2-VL / Qwen2.5-VL directory for something that wraps the model (the env
// policy, `medgym serve --model`): tokenizer files, weights, and the context the config allows; the
// model is freed when the wrapper cannot be built from it.
import * as fs from 'fs';
import * as path from 'path';
import { QwenVLModel, type QwenLoadOptions } from './engine';
import { QwenTokenizer } from './tokenizer';

/** Longest context by default: min(config.json max_position_embeddings, this). */
export const DEFAULT_QWEN_MAX_SEQ = 32768;

/** max_position_embeddings of `dir/config.json` (top level or text_config), when it has one. */
export function maxPositionEmbeddings(dir: string): number | undefined {
  try {
    const j = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    const t = (j.text_config && typeof j.text_config === 'object' ? j.text_config : {}) as Record<string, unknown>;
    const v = t.max_position_embeddings ?? j.max_position_embeddings;
    return Number.isSafeInteger(v) && (v as number) > 0 ? (v as number) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Loads `dir`'s tokenizer and model and builds the wrapper with the directory's default context
 * (min(max_position_embeddings, DEFAULT_QWEN_MAX_SEQ)); disposes the model if `build` throws.
 */
export async function loadQwenDir<T>(dir: string, load: QwenLoadOptions | undefined, build: (model: QwenVLModel, tokenizer: QwenTokenizer, maxSeqDefault: number) => T): Promise<T> {
  const tokenizer = QwenTokenizer.fromDir(dir);
  const model = await QwenVLModel.load(dir, load);
  try {
    return build(model, tokenizer, Math.min(maxPositionEmbeddings(dir) ?? DEFAULT_QWEN_MAX_SEQ, DEFAULT_QWEN_MAX_SEQ));
  } catch (err) {
    model.dispose();
    throw err;
  }
}
