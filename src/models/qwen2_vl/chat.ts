// A conversation rendered with the model's own chat template (@huggingface/jinja), then tokenized
// with each image's single <|image_pad|> expanded to the caller's merged-patch count.
//
// Templates differ in what they handle: Qwen2-VL's processor template renders image parts but not
// tools or the tool role; Qwen2.5 / Qwen3 text templates render tools and the tool role but only
// string content. What a template lacks is filled in here the way the family's own templates do it
// (see docs/models.md): image parts become `<|vision_start|><|image_pad|><|vision_end|>` in the text,
// tools become the `# Tools` block of the system turn, tool messages become a user turn of
// `<tool_response>\n…\n</tool_response>` blocks.
import { Template } from '@huggingface/jinja';
import { QWEN_TOKEN_STRINGS, type QwenTokenizer } from './tokenizer';

export type QwenRole = 'system' | 'user' | 'assistant' | 'tool';
export type QwenContentPart = { type: 'text'; text: string } | { type: 'image' };
export interface QwenMessage {
  role: QwenRole;
  content: string | QwenContentPart[];
}

/** A tool in the OpenAI function format, as Qwen templates render it. */
export interface QwenTool {
  type: 'function';
  function: { name: string; description: string; parameters: unknown };
}

/** A chat template error: the template failed to parse or render, or rendered the images wrongly. */
export class QwenChatError extends Error {
  override name = 'QwenChatError';
}

/** What a template renders itself; by default detected from its text (see detectTemplateSupport). */
export interface TemplateSupport {
  /** Image content parts (Qwen2-VL processor template). */
  images: boolean;
  /** The `tools` variable (Qwen2.5 / Qwen3 templates). */
  tools: boolean;
  /** Messages with role "tool". */
  toolRole: boolean;
}

export interface RenderOptions {
  /** Tools shown to the model (OpenAI function format). */
  tools?: QwenTool[];
  /** End with the assistant header so the model writes the next turn. Default true. */
  addGenerationPrompt?: boolean;
  /** Override what the template is assumed to handle. */
  support?: Partial<TemplateSupport>;
  /** More template variables (e.g. enable_thinking: false for Qwen3, add_vision_id). */
  extra?: Record<string, unknown>;
}

export interface RenderedChat {
  /** The template's output: exactly one `<|image_pad|>` per image, in message order. */
  text: string;
  /** Number of images (= `<|image_pad|>` occurrences in text). */
  images: number;
}

export interface EncodedChat {
  /** Token ids, each image's pad run expanded. */
  ids: number[];
  /** text with each `<|image_pad|>` repeated to its count (decode(ids) equals it). */
  text: string;
  /** Per image, in order: where its pad run starts in ids and how long it is. */
  images: { start: number; count: number }[];
}

/** The Qwen2.5 `# Tools` system block (the same words as the templates that render tools). */
export function toolsSystemBlock(tools: QwenTool[]): string {
  return (
    '# Tools\n\nYou may call one or more functions to assist with the user query.\n\n' +
    'You are provided with function signatures within <tools></tools> XML tags:\n<tools>' +
    tools.map((t) => '\n' + pyJson(t)).join('') +
    '\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n' +
    '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
  );
}

/** JSON the way Python's json.dumps(ensure_ascii=False) writes it (", " and ": "), as the templates' tojson does. */
export function pyJson(v: unknown): string {
  if (Array.isArray(v)) return '[' + v.map(pyJson).join(', ') + ']';
  if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
    return '{' + entries.map(([k, x]) => JSON.stringify(k) + ': ' + pyJson(x)).join(', ') + '}';
  }
  return v === undefined ? 'null' : JSON.stringify(v);
}

/** Guesses what a template renders from its source text. */
export function detectTemplateSupport(template: string): TemplateSupport {
  return {
    images: template.includes(QWEN_TOKEN_STRINGS.imagePad),
    tools: /\btools\b/.test(template),
    toolRole: /["']tool["']/.test(template),
  };
}

const compiled = new Map<string, Template>();
function compile(template: string): Template {
  let t = compiled.get(template);
  if (!t) {
    try {
      t = new Template(template);
    } catch (e) {
      throw new QwenChatError(`chat template does not parse: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (compiled.size > 16) compiled.clear();
    compiled.set(template, t);
  }
  return t;
}

/** Writes `<` of every control token spelled in `text` as `&lt;`, so content can never open or close a turn. */
export function escapeControlTokens(text: string, controlTokens: readonly string[]): string {
  let out = text;
  for (const s of controlTokens) if (out.includes(s)) out = out.split(s).join('&lt;' + s.slice(1));
  return out;
}

/**
 * Renders `messages` with `tokenizer`'s chat template (or `template`). Content is escaped (control
 * tokens cannot be spelled in it); the result has one `<|image_pad|>` per image part, checked.
 */
export function renderChat(tokenizer: QwenTokenizer, messages: QwenMessage[], opts: RenderOptions & { template?: string } = {}): RenderedChat {
  const template = opts.template ?? tokenizer.chatTemplate;
  if (template === undefined) throw new QwenChatError('the tokenizer has no chat template (tokenizer_config.json chat_template, chat_template.json or chat_template.jinja)');
  if (!Array.isArray(messages) || messages.length === 0) throw new QwenChatError('Expected a non-empty array of messages');
  const support = { ...detectTemplateSupport(template), ...opts.support };
  const esc = (s: string): string => escapeControlTokens(s, tokenizer.controlTokens);
  const S = QWEN_TOKEN_STRINGS;
  const imageText = S.visionStart + S.imagePad + S.visionEnd;

  let nImages = 0;
  let msgs: QwenMessage[] = messages.map((m, i) => {
    if (!m || !['system', 'user', 'assistant', 'tool'].includes(m.role)) throw new QwenChatError(`messages[${i}].role must be system, user, assistant or tool`);
    if (typeof m.content === 'string') return { role: m.role, content: esc(m.content) };
    if (!Array.isArray(m.content)) throw new QwenChatError(`messages[${i}].content must be a string or an array of parts`);
    const parts = m.content.map((p, j): QwenContentPart => {
      if (p && p.type === 'image') {
        nImages++;
        return { type: 'image' };
      }
      if (p && p.type === 'text' && typeof p.text === 'string') return { type: 'text', text: esc(p.text) };
      throw new QwenChatError(`messages[${i}].content[${j}] must be {type: "text", text} or {type: "image"}`);
    });
    return { role: m.role, content: parts };
  });

  if (!support.toolRole) msgs = foldToolMessages(msgs);
  const tools = opts.tools && opts.tools.length > 0 ? (deepEscape(opts.tools, esc) as QwenTool[]) : undefined;
  if (tools && !support.tools) msgs = withToolsBlock(msgs, tools);
  if (!support.images) {
    msgs = msgs.map((m) => (typeof m.content === 'string' ? m : { role: m.role, content: m.content.map((p) => (p.type === 'image' ? imageText : p.text)).join('') }));
  }

  const cfg = tokenizer.config;
  const tokenStr = (k: string): string => {
    const v = cfg[k];
    return typeof v === 'string' ? v : v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string' ? (v as { content: string }).content : '';
  };
  let text: string;
  try {
    text = compile(template).render({
      messages: msgs,
      ...(tools && support.tools ? { tools } : {}),
      add_generation_prompt: opts.addGenerationPrompt ?? true,
      bos_token: tokenStr('bos_token'),
      eos_token: tokenStr('eos_token'),
      pad_token: tokenStr('pad_token'),
      ...opts.extra,
    });
  } catch (e) {
    throw new QwenChatError(`chat template failed to render: ${e instanceof Error ? e.message : String(e)}`);
  }
  const rendered = text.split(S.imagePad).length - 1;
  if (rendered !== nImages) {
    throw new QwenChatError(`the chat template rendered ${rendered} ${S.imagePad} for ${nImages} image part(s); set support.images to match the template`);
  }
  return { text, images: nImages };
}

/**
 * Tokenizes a rendered chat, expanding image k's `<|image_pad|>` to padCounts[k] pad ids (the merged
 * patch count of that image). The text between pads is encoded piece by piece (pads are added tokens,
 * so this equals encoding the whole), and the pad ids are inserted here: the count always matches.
 */
export function encodeChat(tokenizer: QwenTokenizer, chat: RenderedChat, padCounts: readonly number[]): EncodedChat {
  if (!Array.isArray(padCounts) || padCounts.length !== chat.images) {
    throw new QwenChatError(`Expected ${chat.images} pad count(s), one per image, but received ${Array.isArray(padCounts) ? padCounts.length : typeof padCounts}`);
  }
  for (const [k, n] of padCounts.entries()) {
    if (!Number.isInteger(n) || n < 1) throw new QwenChatError(`Expected an integer >= 1 for padCounts[${k}] but received ${String(n)}`);
  }
  const pad = QWEN_TOKEN_STRINGS.imagePad;
  const padId = tokenizer.special.imagePad;
  const pieces = chat.text.split(pad);
  if (pieces.length !== chat.images + 1) throw new QwenChatError(`rendered text has ${pieces.length - 1} ${pad}, expected ${chat.images}`);
  const ids: number[] = [];
  const images: { start: number; count: number }[] = [];
  let text = '';
  for (const [k, piece] of pieces.entries()) {
    for (const id of tokenizer.encode(piece)) ids.push(id);
    text += piece;
    if (k < padCounts.length) {
      images.push({ start: ids.length, count: padCounts[k] });
      for (let i = 0; i < padCounts[k]; i++) ids.push(padId);
      text += pad.repeat(padCounts[k]);
    }
  }
  return { ids, text, images };
}

/** renderChat then encodeChat. */
export function applyChatTemplate(
  tokenizer: QwenTokenizer,
  messages: QwenMessage[],
  padCounts: readonly number[],
  opts: RenderOptions & { template?: string } = {},
): EncodedChat & { rendered: RenderedChat } {
  const rendered = renderChat(tokenizer, messages, opts);
  return { ...encodeChat(tokenizer, rendered, padCounts), rendered };
}

/** Consecutive tool messages as one user turn of `<tool_response>\n…\n</tool_response>` blocks (Qwen2.5's rendering). */
function foldToolMessages(msgs: QwenMessage[]): QwenMessage[] {
  const out: QwenMessage[] = [];
  for (const m of msgs) {
    if (m.role !== 'tool') {
      out.push(m);
      continue;
    }
    const body: QwenContentPart[] = [
      { type: 'text', text: '<tool_response>\n' },
      ...(typeof m.content === 'string' ? [{ type: 'text' as const, text: m.content }] : m.content),
      { type: 'text', text: '\n</tool_response>' },
    ];
    const prev = out[out.length - 1] as (QwenMessage & { fromTool?: boolean }) | undefined;
    if (prev && prev.fromTool) (prev.content as QwenContentPart[]).push({ type: 'text', text: '\n' }, ...body);
    else out.push({ role: 'user', content: body, fromTool: true } as QwenMessage);
  }
  // Merge adjacent text parts; a text-only message becomes a string (templates test `content is string`).
  return out.map((m) => {
    if (typeof m.content === 'string') return { role: m.role, content: m.content };
    const parts: QwenContentPart[] = [];
    for (const p of m.content) {
      const last = parts[parts.length - 1];
      if (p.type === 'text' && last && last.type === 'text') parts[parts.length - 1] = { type: 'text', text: last.text + p.text };
      else parts.push(p);
    }
    return { role: m.role, content: parts.length === 1 && parts[0].type === 'text' ? parts[0].text : parts };
  });
}

/** The `# Tools` block at the end of the system turn (a system turn of just the block when there is none). */
function withToolsBlock(msgs: QwenMessage[], tools: QwenTool[]): QwenMessage[] {
  const block = toolsSystemBlock(tools);
  const first = msgs[0];
  if (first.role !== 'system') return [{ role: 'system', content: block }, ...msgs];
  const content = typeof first.content === 'string' ? first.content + '\n\n' + block : [...first.content, { type: 'text' as const, text: '\n\n' + block }];
  return [{ role: 'system', content }, ...msgs.slice(1)];
}

function deepEscape(v: unknown, esc: (s: string) => string): unknown {
  if (typeof v === 'string') return esc(v);
  if (Array.isArray(v)) return v.map((x) => deepEscape(x, esc));
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [esc(k), deepEscape(x, esc)]));
  return v;
}
