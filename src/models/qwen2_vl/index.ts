// Qwen2-VL / Qwen2.5-VL text side: tokenizer files, chat template, and the env-protocol mapping.
export { QwenTokenizer, QwenTokenizerError, QWEN_FILE_LIMITS, QWEN_TOKEN_STRINGS } from './tokenizer';
export type { QwenSpecialIds, QwenTokenizerFiles, QwenAddedToken, DecodeOptions } from './tokenizer';
export { renderChat, encodeChat, applyChatTemplate, toolsSystemBlock, pyJson, detectTemplateSupport, escapeControlTokens, QwenChatError } from './chat';
export type { QwenRole, QwenContentPart, QwenMessage, QwenTool, TemplateSupport, RenderOptions, RenderedChat, EncodedChat } from './chat';
export { QWEN_SYSTEM_PROMPT, toQwenTools, episodeToQwenMessages, parseEnvPrompt, parseEnvResponse, envActionToQwen, qwenToEnvAction } from './protocol';
export type { EnvToolResponse, EnvTurn, EnvEpisode, QwenActionResult } from './protocol';
