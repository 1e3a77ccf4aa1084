// A validated request's messages → the model's input: the medgym-vlm chat rendering (token ids with
// one <|image|> per view) and the decoded views, within the server's limits and the model's context.
import { renderMedgymChat, MedgymChatError } from '../../policy/openai/medgym_chat';
import type { ChatMessage } from '../../policy/openai/types';
import type { ViewImage } from '../../tools/image';
import { OpenAIError, invalid } from './errors';
import { decodeView, type ViewSpec } from './images';
import type { ChatRequestMessage } from './request_schema';
import type { Prompt } from './served_model';

export interface PromptLimits extends ViewSpec {
  /** Context positions of the model (T_max). */
  maxSeq: number;
  /** Positions one view takes (N_p). */
  imageTokens: number;
  maxMessages: number;
  maxImages: number;
}

/** Where each image part sits, in the order the rendering consumes them (messages, then parts, in order). */
function imageParams(messages: ChatRequestMessage[]): { param: string; url: string }[] {
  const out: { param: string; url: string }[] = [];
  messages.forEach((m, i) => {
    if (!Array.isArray(m.content)) return;
    m.content.forEach((p, j) => {
      if (p.type === 'image_url') out.push({ param: `messages[${i}].content[${j}]`, url: p.image_url.url });
    });
  });
  return out;
}

/** The wire message in the renderer's type: nulls dropped, 'developer' read as 'system'. */
function toChatMessage(m: ChatRequestMessage): ChatMessage {
  return {
    role: m.role === 'developer' ? 'system' : m.role,
    content: m.content ?? null,
    ...(m.tool_calls ? { tool_calls: m.tool_calls } : {}),
    ...(m.tool_call_id != null ? { tool_call_id: m.tool_call_id } : {}),
    ...(m.name != null ? { name: m.name } : {}),
    ...(m.token_ids ? { token_ids: m.token_ids } : {}),
  };
}

export async function buildPrompt(messages: ChatRequestMessage[], limits: PromptLimits): Promise<Prompt> {
  if (messages.length > limits.maxMessages) throw invalid('messages', `at most ${limits.maxMessages} messages per request, received ${messages.length}`);
  const parts = imageParams(messages);
  if (parts.length > limits.maxImages) throw invalid('messages', `at most ${limits.maxImages} images per request, received ${parts.length}`, 'too_many_images');
  let rendered: { tokens: number[]; imageUrls: string[] };
  try {
    rendered = renderMedgymChat(messages.map(toChatMessage));
  } catch (err) {
    // Its message starts with the field at fault (`messages[2].token_ids[5]: …`).
    if (err instanceof MedgymChatError) throw new OpenAIError(400, 'invalid_request_error', err.message, /^messages[^\s:]*/.exec(err.message)?.[0] ?? 'messages');
    throw err;
  }
  // The renderer takes images in message and part order; name them by their place in the request.
  const named = rendered.imageUrls.map((url, k) => (parts[k]?.url === url ? parts[k].param : `messages (image ${k})`));
  const positions = rendered.tokens.length + rendered.imageUrls.length * (limits.imageTokens - 1);
  if (positions >= limits.maxSeq) {
    throw new OpenAIError(400, 'invalid_request_error', `messages: the prompt takes ${positions} context positions (each image ${limits.imageTokens}); this model's context is ${limits.maxSeq} and a completion needs at least one more`, 'messages', 'context_length_exceeded');
  }
  const images: ViewImage[] = [];
  // One at a time: the first bad image in request order is the one the 400 names.
  for (let k = 0; k < rendered.imageUrls.length; k++) images.push(await decodeView(rendered.imageUrls[k], limits, named[k]));
  return { tokens: rendered.tokens, images, positions };
}
