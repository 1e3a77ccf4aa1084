// A validated request's messages → a Qwen2-VL / Qwen2.5-VL prompt: the model's own chat template
// (renderChat: the request's tools as the template shows them, the generation prompt), then
// encodeChat with each image's <|image_pad|> run as long as its merged patches after smart_resize.
// Images are decoded at any size (./images.ts decodeImage); the model preprocesses them itself.
// Assistant tool_calls are written as Qwen2.5's template writes them; assistant token_ids (a
// medgym-vlm extension) are ignored: the template renders the content.
import { encodeChat, pyJson, QwenChatError, renderChat, type QwenContentPart, type QwenMessage, type QwenRenderChoices, type QwenTool } from '../../models/qwen2_vl';
import { mergedTokenCount, type PreprocessorConfig } from '../../models/qwen2_vl/preprocess';
import type { QwenTokenizer } from '../../models/qwen2_vl/tokenizer';
import type { ViewImage } from '../../tools/image';
import { invalid, OpenAIError } from './errors';
import { decodeImage } from './images';
import type { ChatRequest, ChatRequestMessage } from './request_schema';
import type { Prompt, RequestLimits } from './served_model';

export interface QwenPromptSpec {
  tokenizer: QwenTokenizer;
  preprocessor: PreprocessorConfig;
  /** Context positions of the model. */
  maxSeq: number;
  /** Template choices passed to renderChat (support override, extra variables, another template). */
  render: QwenRenderChoices;
}

type ToolCall = NonNullable<ChatRequestMessage['tool_calls']>[number];

/** The calls as Qwen2.5's template writes them after the content: `<tool_call>\n{"name": …, "arguments": …}\n</tool_call>`. */
function toolCallText(content: string, calls: ToolCall[], i: number): string {
  return calls
    .map((c, k) => {
      let args: unknown;
      try {
        args = JSON.parse(c.function.arguments);
      } catch {
        throw invalid(`messages[${i}].tool_calls[${k}].function.arguments`, 'expected JSON text of the arguments');
      }
      const sep = content || k > 0 ? '\n' : '';
      return `${sep}<tool_call>\n{"name": ${JSON.stringify(c.function.name)}, "arguments": ${pyJson(args)}}\n</tool_call>`;
    })
    .join('');
}

interface ImageRef {
  param: string;
  url: string;
}

function toQwenMessage(m: ChatRequestMessage, i: number, images: ImageRef[]): QwenMessage {
  const role = m.role === 'developer' ? 'system' : m.role;
  let content: QwenMessage['content'];
  if (Array.isArray(m.content)) {
    content = m.content.map((p, j): QwenContentPart => {
      if (p.type === 'text') return { type: 'text', text: p.text };
      if (role === 'assistant') throw invalid(`messages[${i}].content[${j}]`, 'assistant messages cannot hold images');
      images.push({ param: `messages[${i}].content[${j}]`, url: p.image_url.url });
      return { type: 'image' };
    });
  } else content = m.content ?? '';
  if (role === 'assistant' && m.tool_calls?.length) {
    const text = typeof content === 'string' ? content : content.map((p) => (p.type === 'text' ? p.text : '')).join('');
    content = text + toolCallText(text, m.tool_calls, i);
  }
  return { role, content };
}

function requestTools(req: ChatRequest): QwenTool[] | undefined {
  if (!req.tools?.length || req.tool_choice === 'none') return undefined;
  return req.tools.map((t) => ({ type: 'function', function: { name: t.function.name, description: t.function.description ?? '', parameters: t.function.parameters ?? { type: 'object', properties: {} } } }));
}

/** The pad count of an image (smart_resize refuses sides under 10 pixels and aspect ratios above 200). */
function padCount(v: ViewImage, pre: PreprocessorConfig, param: string): number {
  try {
    return mergedTokenCount(v.height, v.width, pre);
  } catch (err) {
    throw invalid(param, err instanceof Error ? err.message : String(err), 'invalid_image_size');
  }
}

export async function buildQwenPrompt(req: ChatRequest, spec: QwenPromptSpec, limits: RequestLimits): Promise<Prompt> {
  const { messages } = req;
  if (messages.length > limits.maxMessages) throw invalid('messages', `at most ${limits.maxMessages} messages per request, received ${messages.length}`);
  const refs: ImageRef[] = [];
  const qwenMessages = messages.map((m, i) => toQwenMessage(m, i, refs));
  if (refs.length > limits.maxImages) throw invalid('messages', `at most ${limits.maxImages} images per request, received ${refs.length}`, 'too_many_images');
  let rendered;
  try {
    rendered = renderChat(spec.tokenizer, qwenMessages, { ...spec.render, tools: requestTools(req), addGenerationPrompt: true });
  } catch (err) {
    if (err instanceof QwenChatError) throw new OpenAIError(400, 'invalid_request_error', `messages: ${err.message}`, /^messages[^\s:]*/.exec(err.message)?.[0] ?? 'messages');
    throw err;
  }
  const images: ViewImage[] = [];
  // One at a time: the first bad image in request order is the one the 400 names.
  for (const r of refs) images.push(await decodeImage(r.url, r.param));
  const enc = encodeChat(spec.tokenizer, rendered, images.map((v, k) => padCount(v, spec.preprocessor, refs[k].param)));
  if (enc.ids.length >= spec.maxSeq) {
    throw new OpenAIError(400, 'invalid_request_error', `messages: the prompt takes ${enc.ids.length} context positions (images as their merged patches); this model's context is ${spec.maxSeq} and a completion needs at least one more`, 'messages', 'context_length_exceeded');
  }
  return { tokens: enc.ids, images, positions: enc.ids.length };
}
