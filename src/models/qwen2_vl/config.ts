// config.json of the Qwen2-VL and Qwen2.5-VL families (model_type "qwen2_vl" / "qwen2_5_vl"), with
// Hugging Face's defaults (transformers models/qwen2_vl/configuration_qwen2_vl.py and
// models/qwen2_5_vl/configuration_qwen2_5_vl.py), read in both layouts that exist on disk: the text
// fields at the top level (the Hub checkpoints) or under `text_config` (newer transformers), and
// `rope_scaling` or `rope_parameters`. Normalized into one shape the native model and the weight table
// use; every check names the file and the field.
import * as fs from 'fs';
import * as path from 'path';

export const FAMILIES = ['qwen2_vl', 'qwen2_5_vl'] as const;
export type Family = (typeof FAMILIES)[number];

export interface QwenTextConfig {
  /** Rows of the embedding and the LM head (`vocab_size`; may exceed the tokenizer's vocabulary). */
  vocabSize: number;
  /** Model width (`hidden_size`). */
  hidden: number;
  /** Hidden width of each block's SwiGLU MLP (`intermediate_size`). */
  intermediate: number;
  /** Decoder blocks (`num_hidden_layers`). */
  layers: number;
  /** Query heads (`num_attention_heads`). */
  heads: number;
  /** Key/value heads (`num_key_value_heads`; grouped-query attention when fewer than heads). */
  kvHeads: number;
  /** hidden / heads. */
  headDim: number;
  /** RMSNorm epsilon (`rms_norm_eps`). */
  rmsEps: number;
  /** Rotary base (`rope_theta`). */
  ropeTheta: number;
  /** M-RoPE: rotary frequency pairs for (temporal, height, width); sums to headDim / 2. */
  mropeSection: [number, number, number];
  /** The LM head reuses the embedding matrix (`tie_word_embeddings`). */
  tieEmbeddings: boolean;
}

export interface QwenVisionConfig {
  /** Vision blocks (`vision_config.depth`). */
  depth: number;
  /** Width of the vision blocks (Qwen2-VL embed_dim, Qwen2.5-VL hidden_size). */
  dim: number;
  /** Attention heads of a vision block. */
  heads: number;
  /** Hidden width of a block's MLP (Qwen2-VL embed_dim × mlp_ratio, Qwen2.5-VL intermediate_size). */
  mlpHidden: number;
  /** Qwen2-VL: LayerNorm + fc1/QuickGELU/fc2; Qwen2.5-VL: RMSNorm + SwiGLU (gate/up/down, with bias). */
  block: 'layernorm_gelu' | 'rmsnorm_swiglu';
  /** The MLP activation as config.json names it (`hidden_act`: quick_gelu, silu, …). */
  act: string;
  /** Image channels the patch embedding takes (3). */
  inChannels: number;
  /** Patch side in pixels (`patch_size`, 14). */
  patch: number;
  /** Patches merged per side into one language-model token (`spatial_merge_size`, 2: 2×2 patches per token). */
  merge: number;
  /** Frames per temporal patch (`temporal_patch_size`, 2: a still image is repeated). */
  temporalPatch: number;
  /** Width the merger projects to (the language model's hidden size). */
  outHidden: number;
  /** Qwen2.5-VL window attention: window side in pixels, and the blocks that attend over the whole image. */
  windowSize?: number;
  /** Qwen2.5-VL: the blocks that attend over the whole image (`fullatt_block_indexes`); the others attend within windows. */
  fullAttBlocks?: number[];
}

export interface QwenVLConfig {
  /** Qwen2-VL or Qwen2.5-VL (from config.json's model_type / architectures). */
  family: Family;
  /** The language model. */
  text: QwenTextConfig;
  /** The vision tower and its merger. */
  vision: QwenVisionConfig;
  /** Ids of the vision control tokens. */
  tokens: {
    /** `<|image_pad|>` (`image_token_id`): one per merged image token. */
    image: number;
    /** `<|video_pad|>` (`video_token_id`). */
    video: number;
    /** `<|vision_start|>` (`vision_start_token_id`). */
    visionStart: number;
    /** `<|vision_end|>` (`vision_end_token_id`). */
    visionEnd: number;
  };
}

export class ModelConfigError extends Error {
  override name = 'ModelConfigError';
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => !!v && typeof v === 'object' && !Array.isArray(v);

/** Parses a config.json object (`file` names it in errors). */
export function parseQwenConfig(json: unknown, file = 'config.json'): QwenVLConfig {
  const fail = (field: string, msg: string): never => {
    throw new ModelConfigError(`${file}: ${field}: ${msg}`);
  };
  if (!isObj(json)) fail('(root)', 'not a JSON object');
  const root = json as Obj;
  const family = root.model_type as Family;
  if (!FAMILIES.includes(family)) fail('model_type', `${JSON.stringify(root.model_type)} is not supported (supported: ${FAMILIES.join(', ')})`);
  const text: Obj = isObj(root.text_config) ? { ...root, ...root.text_config } : root;
  const vis: Obj = isObj(root.vision_config) ? root.vision_config : {};
  const int = (o: Obj, key: string, dflt: number | undefined, where: string, lo = 1, hi = 1 << 24): number => {
    const v = o[key] ?? dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) fail(`${where}${key}`, `expected an integer in [${lo}, ${hi}] but found ${JSON.stringify(v)}`);
    return v as number;
  };
  const num = (o: Obj, key: string, dflt: number, where: string): number => {
    const v = o[key] ?? dflt;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) fail(`${where}${key}`, `expected a positive number but found ${JSON.stringify(v)}`);
    return v as number;
  };

  const hidden = int(text, 'hidden_size', 8192, '');
  const heads = int(text, 'num_attention_heads', 64, '');
  const kvHeads = int(text, 'num_key_value_heads', heads, '');
  if (hidden % heads) fail('num_attention_heads', `${heads} does not divide hidden_size ${hidden}`);
  if (heads % kvHeads) fail('num_key_value_heads', `${kvHeads} does not divide num_attention_heads ${heads}`);
  const headDim = hidden / heads;
  if (headDim % 2) fail('hidden_size', `head dim ${headDim} must be even (rotary pairs)`);
  const rope = isObj(text.rope_scaling) ? text.rope_scaling : isObj(text.rope_parameters) ? text.rope_parameters : {};
  const section = rope.mrope_section;
  if (!Array.isArray(section) || section.length !== 3 || !section.every((s) => Number.isInteger(s) && s > 0)) fail('rope_scaling.mrope_section', `expected three positive integers but found ${JSON.stringify(section)}`);
  const mrope = section as [number, number, number];
  if (mrope[0] + mrope[1] + mrope[2] !== headDim / 2) fail('rope_scaling.mrope_section', `[${mrope}] sums to ${mrope[0] + mrope[1] + mrope[2]}, not head dim / 2 = ${headDim / 2}`);

  const v25 = family === 'qwen2_5_vl';
  const dim = int(vis, v25 ? 'hidden_size' : 'embed_dim', v25 ? 3584 : 1280, 'vision_config.');
  const vheads = int(vis, 'num_heads', 16, 'vision_config.');
  if (dim % vheads) fail('vision_config.num_heads', `${vheads} does not divide the vision width ${dim}`);
  const patch = int(vis, 'patch_size', 14, 'vision_config.');
  const merge = int(vis, 'spatial_merge_size', 2, 'vision_config.');
  const vision: QwenVisionConfig = {
    depth: int(vis, 'depth', 32, 'vision_config.'),
    dim,
    heads: vheads,
    mlpHidden: v25 ? int(vis, 'intermediate_size', 3420, 'vision_config.') : dim * int(vis, 'mlp_ratio', 4, 'vision_config.'),
    block: v25 ? 'rmsnorm_swiglu' : 'layernorm_gelu',
    act: String(vis.hidden_act ?? (v25 ? 'silu' : 'quick_gelu')),
    inChannels: int(vis, vis.in_channels !== undefined ? 'in_channels' : 'in_chans', 3, 'vision_config.', 1, 4),
    patch,
    merge,
    temporalPatch: int(vis, 'temporal_patch_size', 2, 'vision_config.'),
    outHidden: int(vis, v25 ? 'out_hidden_size' : 'hidden_size', v25 ? 3584 : 3584, 'vision_config.'),
  };
  if (vision.outHidden !== hidden) fail(`vision_config.${v25 ? 'out_hidden_size' : 'hidden_size'}`, `${vision.outHidden} differs from the language model's hidden_size ${hidden}`);
  if (v25) {
    vision.windowSize = int(vis, 'window_size', 112, 'vision_config.');
    const full = vis.fullatt_block_indexes ?? [7, 15, 23, 31];
    if (!Array.isArray(full) || !full.every((b) => Number.isInteger(b) && b >= 0 && b < vision.depth)) fail('vision_config.fullatt_block_indexes', `expected block indices in [0, ${vision.depth}) but found ${JSON.stringify(full)}`);
    vision.fullAttBlocks = [...(full as number[])];
    if (vision.windowSize % (patch * merge)) fail('vision_config.window_size', `${vision.windowSize} is not a multiple of patch_size × spatial_merge_size (${patch * merge})`);
  }
  const vocabSize = int(text, 'vocab_size', 152064, '');
  const token = (key: string, dflt: number): number => int(root, key, dflt, '', 0, vocabSize - 1);
  return {
    family,
    text: {
      vocabSize,
      hidden,
      intermediate: int(text, 'intermediate_size', 29568, ''),
      layers: int(text, 'num_hidden_layers', 80, ''),
      heads,
      kvHeads,
      headDim,
      rmsEps: num(text, 'rms_norm_eps', 1e-5, ''),
      ropeTheta: num({ rope_theta: text.rope_theta ?? rope.rope_theta }, 'rope_theta', 1e6, ''),
      mropeSection: mrope,
      tieEmbeddings: (root.tie_word_embeddings ?? text.tie_word_embeddings ?? false) === true,
    },
    vision,
    tokens: { image: token('image_token_id', 151655), video: token('video_token_id', 151656), visionStart: token('vision_start_token_id', 151652), visionEnd: token('vision_end_token_id', 151653) },
  };
}

/** Reads `<dir>/config.json` (at most 1 MB: a config is a few kB). */
export function readQwenConfig(dir: string): QwenVLConfig {
  const file = path.join(dir, 'config.json');
  let text: string;
  try {
    if (fs.statSync(file).size > 1 << 20) throw new Error('larger than 1 MB');
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ModelConfigError(`${file}: cannot read (${(err as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ModelConfigError(`${file}: not valid JSON (${(err as Error).message})`);
  }
  return parseQwenConfig(json, file);
}
