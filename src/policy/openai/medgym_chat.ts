// The 'medgym-vlm' protocol: the SPEC §3 transcript as OpenAI chat messages, both ways, token-exact.
//
//   renderMedgymChat (the server side, `medgym serve`): messages → SPEC §1 ids + the image URLs in order.
//     `<|bos|>` + system text; user → `\nuser: ` + one `<|image|>` per image part + (`\n` + text);
//     assistant → `\nassistant: ` + its token_ids verbatim (else its text + its tool calls);
//     tool → `\n<tool_response>` + text + one `<|image|>` per image part + `</tool_response>`;
//     then the generation prompt `\nassistant: `.
//   envPromptMessages / envResponseMessages / sampledTurnMessage (the client side, HttpPolicy): the env's
//     observations and the sampled ids as such messages. The client renders what it sends and checks
//     it equals the session's ids (assertRendersTo), so it never sends a context other than the env's.
import { decode, encode, IMAGE_ID, VOCAB_SIZE } from '../../tokenizer';
import { parseEnvPrompt, parseEnvResponse } from '../../models/qwen2_vl/protocol';
import type { ChatContent, ChatContentPart, ChatMessage } from './types';

/** A message list that is not a medgym-vlm transcript; the message names the offending `messages[i]…`. */
export class MedgymChatError extends Error {
  /** Always 'MedgymChatError'. */
  override name = 'MedgymChatError';
}

export interface RenderedMedgymChat {
  /** SPEC §1 ids, one IMAGE_ID per image, ending with the generation prompt `\nassistant: `. */
  tokens: number[];
  /** The image parts' URLs, in the order of their IMAGE_IDs. */
  imageUrls: string[];
}

const GENERATION_PROMPT = '\nassistant: ';

/** Text and image parts of a message's content, checked. */
function splitContent(content: ChatContent | null | undefined, where: string): { text: string; images: string[] } {
  if (content === null || content === undefined) return { text: '', images: [] };
  if (typeof content === 'string') return { text: content, images: [] };
  if (!Array.isArray(content)) throw new MedgymChatError(`${where}.content: expected a string, an array of parts or null but received ${typeof content}`);
  const texts: string[] = [];
  const images: string[] = [];
  content.forEach((p: ChatContentPart, j) => {
    if (p && p.type === 'text' && typeof p.text === 'string') texts.push(p.text);
    else if (p && p.type === 'image_url' && p.image_url && typeof p.image_url.url === 'string') images.push(p.image_url.url);
    else throw new MedgymChatError(`${where}.content[${j}]: expected {type: "text", text} or {type: "image_url", image_url: {url}}`);
  });
  return { text: texts.join(''), images };
}

/** encode(text), refusing text that spells <|image|> (every IMAGE_ID must stand for an image part). */
function encodeText(text: string, where: string): number[] {
  const ids = encode(text);
  if (ids.includes(IMAGE_ID)) throw new MedgymChatError(`${where}: the text spells <|image|>; images are image_url parts`);
  return ids;
}

function checkTokenIds(v: unknown, where: string): number[] {
  if (!Array.isArray(v)) throw new MedgymChatError(`${where}: expected an array of token ids`);
  v.forEach((t, k) => {
    if (!Number.isInteger(t) || t < 0 || t >= VOCAB_SIZE) throw new MedgymChatError(`${where}[${k}]: expected a token id in [0, ${VOCAB_SIZE}) but received ${JSON.stringify(t)}`);
    if (t === IMAGE_ID) throw new MedgymChatError(`${where}[${k}]: <|image|> is never sampled`);
  });
  return v as number[];
}

/** An assistant turn without token_ids: its text, then each call as `<tool_call>{"name":…,"arguments":…}</tool_call>`. */
function assistantIds(m: ChatMessage, where: string): number[] {
  const { text, images } = splitContent(m.content, where);
  if (images.length) throw new MedgymChatError(`${where}.content: an assistant message holds no images`);
  const ids = encodeText(text, `${where}.content`);
  if (m.tool_calls === undefined) return ids;
  if (!Array.isArray(m.tool_calls)) throw new MedgymChatError(`${where}.tool_calls: expected an array`);
  m.tool_calls.forEach((c, j) => {
    const at = `${where}.tool_calls[${j}].function`;
    if (!c || !c.function || typeof c.function.name !== 'string') throw new MedgymChatError(`${at}.name: expected a string`);
    let args: unknown;
    try {
      args = JSON.parse(typeof c.function.arguments === 'string' ? c.function.arguments : '');
    } catch {
      throw new MedgymChatError(`${at}.arguments: expected JSON text of the arguments but received ${JSON.stringify(c.function.arguments)}`);
    }
    ids.push(...encodeText(`<tool_call>${JSON.stringify({ name: c.function.name, arguments: args })}</tool_call>`, `${at}`));
  });
  return ids;
}

/** Messages → SPEC §1 ids + image URLs (see the top of this file). Throws MedgymChatError naming `messages[i]…`. */
export function renderMedgymChat(messages: ChatMessage[]): RenderedMedgymChat {
  if (!Array.isArray(messages) || messages.length === 0) throw new MedgymChatError('messages: expected a non-empty array');
  const tokens: number[] = encode('<|bos|>');
  const imageUrls: string[] = [];
  messages.forEach((m, i) => {
    const where = `messages[${i}]`;
    if (!m || typeof m !== 'object') throw new MedgymChatError(`${where}: expected a message object`);
    if (m.role === 'system') {
      if (i !== 0) throw new MedgymChatError(`${where}: a system message may only come first`);
      const { text, images } = splitContent(m.content, where);
      if (images.length) throw new MedgymChatError(`${where}.content: a system message holds no images`);
      tokens.push(...encodeText(text, `${where}.content`));
    } else if (m.role === 'user') {
      const { text, images } = splitContent(m.content, where);
      tokens.push(...encode('\nuser: '), ...images.map(() => IMAGE_ID));
      if (text.length) tokens.push(...encodeText('\n' + text, `${where}.content`));
      imageUrls.push(...images);
    } else if (m.role === 'assistant') {
      if (i === messages.length - 1) throw new MedgymChatError(`${where}: the last message must be user or tool (the model writes the next assistant turn)`);
      tokens.push(...encode(GENERATION_PROMPT));
      tokens.push(...(m.token_ids !== undefined ? checkTokenIds(m.token_ids, `${where}.token_ids`) : assistantIds(m, where)));
    } else if (m.role === 'tool') {
      const { text, images } = splitContent(m.content, where);
      tokens.push(...encodeText(`\n<tool_response>${text}`, `${where}.content`), ...images.map(() => IMAGE_ID), ...encode('</tool_response>'));
      imageUrls.push(...images);
    } else {
      throw new MedgymChatError(`${where}.role: expected system, user, assistant or tool but received ${JSON.stringify((m as { role?: unknown }).role)}`);
    }
  });
  tokens.push(...encode(GENERATION_PROMPT));
  return { tokens, imageUrls };
}

const imagePart = (url: string): ChatContentPart => ({ type: 'image_url', image_url: { url } });

/** The env's prompt ids (+ one image URL per <|image|>) as [system, user [images…, question]]. */
export function envPromptMessages(tokens: ArrayLike<number>, imageUrls: readonly string[]): ChatMessage[] {
  const p = parseEnvPrompt(decode(tokens));
  if (p.images !== imageUrls.length) throw new MedgymChatError(`the env prompt holds ${p.images} <|image|> but ${imageUrls.length} image(s) came with it`);
  return [
    { role: 'system', content: p.system },
    { role: 'user', content: [...imageUrls.map(imagePart), { type: 'text', text: p.question }] },
  ];
}

/** The env's response ids (+ image URLs) as one tool message per `<tool_response>` block. */
export function envResponseMessages(tokens: ArrayLike<number>, imageUrls: readonly string[]): ChatMessage[] {
  const blocks = parseEnvResponse(decode(tokens));
  const n = blocks.reduce((a, b) => a + b.images, 0);
  if (n !== imageUrls.length) throw new MedgymChatError(`the env response holds ${n} <|image|> but ${imageUrls.length} image(s) came with it`);
  let next = 0;
  return blocks.map((b, k) => {
    const urls = imageUrls.slice(next, next + b.images);
    next += b.images;
    return { role: 'tool', tool_call_id: `call_${k}`, content: [{ type: 'text', text: b.text }, ...urls.map(imagePart)] };
  });
}

/** A sampled turn as the assistant message that carries its ids verbatim. */
export function sampledTurnMessage(ids: ArrayLike<number>): ChatMessage {
  const tokenIds = Array.from(ids);
  return { role: 'assistant', content: decode(tokenIds), token_ids: tokenIds };
}

/** Throws MedgymChatError unless `messages` render to exactly `expected` (and carry `images` URLs). */
export function assertRendersTo(messages: ChatMessage[], expected: ArrayLike<number>, images: number, what: string): void {
  const r = renderMedgymChat(messages);
  const want = Array.from(expected);
  let k = 0;
  while (k < want.length && k < r.tokens.length && want[k] === r.tokens[k]) k++;
  if (k === want.length && k === r.tokens.length && r.imageUrls.length === images) return;
  const show = (ids: number[]): string => JSON.stringify(decode(ids.slice(Math.max(0, k - 20), k + 20)));
  throw new MedgymChatError(
    `${what}: the chat messages render to ${r.tokens.length} ids (${r.imageUrls.length} images) but the session holds ${want.length} (${images} images); ` +
      `first difference at id ${k}: rendered ${show(r.tokens)}, held ${show(want)} — refusing to send a context other than the env's`,
  );
}
