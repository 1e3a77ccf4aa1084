// A tiny Qwen2-VL config.json (the fields the engine reads) for random-weight models in tests; each
// test overrides what it is about (vocabulary size, tied head, token ids).
import { parseQwenConfig } from '../../../src/models/qwen2_vl/config';
import type { QwenVLConfig } from '../../../src/models/qwen2_vl/config';

export function tinyQwen2VlConfig(overrides: Record<string, unknown> = {}): QwenVLConfig {
  return parseQwenConfig({
    model_type: 'qwen2_vl',
    vocab_size: 512,
    hidden_size: 64,
    intermediate_size: 96,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    rms_norm_eps: 1e-6,
    rope_theta: 1e6,
    rope_scaling: { type: 'mrope', mrope_section: [2, 3, 3] },
    tie_word_embeddings: true,
    image_token_id: 500,
    video_token_id: 501,
    vision_start_token_id: 502,
    vision_end_token_id: 503,
    vision_config: { depth: 2, embed_dim: 32, num_heads: 2, mlp_ratio: 2, patch_size: 14, spatial_merge_size: 2, temporal_patch_size: 2, hidden_size: 64, in_chans: 3 },
    ...overrides,
  });
}
