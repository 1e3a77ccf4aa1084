// Qwen2-VL / Qwen2.5-VL from a Hugging Face model directory: config and weight table, the image
// processor, and the text side (tokenizer files, chat template, the env-protocol mapping).
export { FAMILIES, ModelConfigError, parseQwenConfig, readQwenConfig } from './config';
export type { Family, QwenTextConfig, QwenVisionConfig, QwenVLConfig } from './config';
export { weightTable, matchWeights, parameterCount, hubName } from './weights';
export type { WeightSpec } from './weights';
export { DEFAULT_PREPROCESSOR, preprocessImage, readPreprocessorConfig, smartResize } from './preprocess';
export type { PixelInput, Preprocessed, PreprocessorConfig } from './preprocess';
export { resizeBicubic } from './resample';
export { QwenTokenizer, QwenTokenizerError, QWEN_FILE_LIMITS, QWEN_TOKEN_STRINGS } from './tokenizer';
export type { QwenSpecialIds, QwenTokenizerFiles, QwenAddedToken, DecodeOptions } from './tokenizer';
export { renderChat, encodeChat, applyChatTemplate, toolsSystemBlock, pyJson, detectTemplateSupport, escapeControlTokens, QwenChatError } from './chat';
export type { QwenRole, QwenContentPart, QwenMessage, QwenTool, TemplateSupport, RenderOptions, RenderedChat, EncodedChat } from './chat';
export { QWEN_SYSTEM_PROMPT, toQwenTools, episodeToQwenMessages, parseEnvPrompt, parseEnvResponse, envActionToQwen, qwenToEnvAction } from './protocol';
export type { EnvToolResponse, EnvTurn, EnvEpisode, QwenActionResult } from './protocol';
export { ropeIndex, ropeOptions, RopeIndexError, type RopeIndexOptions, type RopeState, type RopeIndex } from './rope_index';
export { QwenVLModel, rawQwenConfig } from './engine';
export type { QwenImage, QwenSequence, QwenLoadOptions, QwenScoreOptions, QwenScoreResult, QwenGenerateOptions, QwenGenerated } from './engine';
export { QwenEnvPolicy, QwenEnvSession, QwenEnvProtocolError, DEFAULT_QWEN_MAX_SEQ, maxPositionEmbeddings, qwenViewPositions, type QwenEnvPolicyOptions, type QwenEnvSpec, type QwenSessionLike, type QwenRenderChoices } from './env_policy';
