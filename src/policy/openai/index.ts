// OpenAI-compatible chat completions: HttpPolicy (a served VLM as a medgym Policy) and the wire shapes
// `medgym serve` answers with. docs/http_policy.md.
export type * from './types';
export { assertRendersTo, envPromptMessages, envResponseMessages, MedgymChatError, renderMedgymChat, sampledTurnMessage } from './medgym_chat';
export type { RenderedMedgymChat } from './medgym_chat';
export { DEFAULT_HTTP_IMAGE_TOKENS, DEFAULT_HTTP_MAX_SEQ, HttpPolicy } from './http_policy';
export type { HttpPolicyOptions, HttpProtocol } from './http_policy';
export { HttpPolicyError, retryAfterMs } from './client';
export type { TransportOptions } from './client';
export { HttpSession, HttpSessionError } from './session';
export { ChatProtocolError, requestSeed } from './chat_protocol';
export type { ToolFormat } from './chat_protocol';
export { viewDataUri } from './views';
