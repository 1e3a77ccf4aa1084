/**
 * `medgym/policy`: the policies behind one interface (the native medgym-vlm policy, presets, device
 * selection; HttpPolicy, a VLM served behind an OpenAI-compatible API; QwenEnvPolicy, a Hugging Face
 * Qwen2-VL / Qwen2.5-VL directory on the native engine) and their types.
 * @module
 */
export * from '../policy';
export { HttpPolicy, HttpPolicyError, HttpSessionError, ChatProtocolError, MedgymChatError, renderMedgymChat, DEFAULT_HTTP_IMAGE_TOKENS, DEFAULT_HTTP_MAX_SEQ } from '../policy/openai';
export type { HttpPolicyOptions, HttpProtocol, ToolFormat, TransportOptions, ChatMessage, ChatCompletionRequest, ChatCompletionResponse, MedgymModelInfo } from '../policy/openai';
export { QwenEnvPolicy } from '../models/qwen2_vl/env_policy';
export type { QwenEnvPolicyOptions } from '../models/qwen2_vl/env_policy';
export { QwenVLModel } from '../models/qwen2_vl/engine';
export type { QwenLoadOptions } from '../models/qwen2_vl/engine';
export type { RawQwenTensor } from '../native/qwen';
// The shapes QwenVLModel's public fields have (config, preprocessor, rope).
export type { QwenVLConfig, QwenTextConfig, QwenVisionConfig } from '../models/qwen2_vl/config';
export type { PreprocessorConfig } from '../models/qwen2_vl/preprocess';
export type { RopeIndexOptions } from '../models/qwen2_vl/rope_index';
