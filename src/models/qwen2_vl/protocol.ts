// medgym's env protocol (SPEC §3) ↔ Qwen's chat protocol.
//
// (a) An env episode (system text, question + image, then per turn the policy's action and the env's
//     tool responses with their views) becomes Qwen chat messages: system, user [image, question],
//     then per turn an assistant message and one `tool` message per tool response.
// (b) A Qwen model's generated assistant text becomes the env's action text:
//     `<tool_call>\n{"name": …, "arguments": …}\n</tool_call>` (any whitespace, several allowed) →
//     `<tool_call>{"name":…,"arguments":…}</tool_call>`; `<answer>X</answer>` is kept.
//
// Choices (docs/models.md): the final answer is asked for as `<answer>X</answer>` in the system text
// (QWEN_SYSTEM_PROMPT) — Qwen models have no answer token, so the answer is plain text in tags; prose
// before the first tool call or answer (Qwen's natural "I will zoom in…") becomes the env's
// `<think>` block, prose after it is dropped and reported; a tool call whose JSON does not parse is
// passed to the env unchanged so that the env answers with its error text and records the format
// error (SPEC §3) — the mapping never hides a malformed call.
import type { QwenContentPart, QwenMessage, QwenTool } from './chat';
import { pyJson } from './chat';

/** System text for Qwen policies: the task, and how to give the final answer (tools come from the template's # Tools block). */
export const QWEN_SYSTEM_PROMPT =
  'You are a medical imaging assistant. Look at the image and use the tools when a detail is too small to judge. ' +
  'Regions are given as a cell of a 4x4 grid over the original image (columns A-D left to right, rows 1-4 top to bottom) ' +
  'or as [x1, y1, x2, y2] integer pixels in the original image. ' +
  'When you are sure, give the final answer as one option letter inside <answer></answer>, for example <answer>B</answer>.';

/** The env's tools (toolJsonSchemas() of src/tools/schemas) in the OpenAI function format Qwen templates render. */
export function toQwenTools(schemas: readonly { name: string; description: string; parameters: unknown }[]): QwenTool[] {
  return schemas.map((s) => ({ type: 'function', function: { name: s.name, description: s.description, parameters: stripSchemaKey(s.parameters) } }));
}

/** z.toJSONSchema adds a "$schema" URL that only costs tokens; drop it at the top level. */
function stripSchemaKey(p: unknown): unknown {
  if (p === null || typeof p !== 'object' || Array.isArray(p)) return p;
  const { $schema: _drop, ...rest } = p as Record<string, unknown>;
  void _drop;
  return rest;
}

/** One env response block: its text and how many views follow it. */
export interface EnvToolResponse {
  text: string;
  images: number;
}

export interface EnvTurn {
  /** The action text the env received (medgym format). */
  action: string;
  /** The Qwen model's own text for this turn, when known: used verbatim (the tokens it generated). */
  raw?: string;
  /** The env's responses to the turn's tool calls, in order (none after an answer). */
  responses?: EnvToolResponse[];
}

export interface EnvEpisode {
  system: string;
  /** The question block (question, lettered options, image size). */
  question: string;
  /** Images before the question. Default 1. */
  images?: number;
  turns: EnvTurn[];
}

/** (a) An env episode as Qwen chat messages. */
export function episodeToQwenMessages(ep: EnvEpisode): QwenMessage[] {
  const nImg = ep.images ?? 1;
  if (!Number.isInteger(nImg) || nImg < 0) throw new RangeError(`Expected an integer >= 0 for images but received ${String(ep.images)}`);
  const msgs: QwenMessage[] = [
    { role: 'system', content: ep.system },
    { role: 'user', content: [...Array.from({ length: nImg }, (): QwenContentPart => ({ type: 'image' })), { type: 'text', text: ep.question }] },
  ];
  for (const t of ep.turns) {
    msgs.push({ role: 'assistant', content: t.raw ?? envActionToQwen(t.action) });
    for (const r of t.responses ?? []) {
      const images = Array.from({ length: r.images }, (): QwenContentPart => ({ type: 'image' }));
      msgs.push({ role: 'tool', content: images.length ? [{ type: 'text', text: r.text }, ...images] : r.text });
    }
  }
  return msgs;
}

/** The env's prompt observation (`<|bos|>` system `\nuser: ` images question `\nassistant: `) split into its parts. */
export function parseEnvPrompt(text: string): { system: string; question: string; images: number } {
  const body = text.startsWith('<|bos|>') ? text.slice('<|bos|>'.length) : text;
  const u = body.indexOf('\nuser: ');
  const tail = '\nassistant: ';
  if (u === -1 || !body.endsWith(tail)) throw new SyntaxError('Expected an env prompt: system text, "\\nuser: ", the question, "\\nassistant: "');
  let q = body.slice(u + '\nuser: '.length, body.length - tail.length);
  let images = 0;
  while (q.startsWith('<|image|>')) {
    images++;
    q = q.slice('<|image|>'.length);
  }
  return { system: body.slice(0, u), question: q.startsWith('\n') ? q.slice(1) : q, images };
}

/** The env's response observation (`\n<tool_response>` text `<|image|>`… `</tool_response>`, repeated, then `\nassistant: `) split into blocks. */
export function parseEnvResponse(text: string): EnvToolResponse[] {
  const out: EnvToolResponse[] = [];
  const re = /<tool_response>([\s\S]*?)<\/tool_response>/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    let body = m[1];
    let images = 0;
    while (body.endsWith('<|image|>')) {
      images++;
      body = body.slice(0, body.length - '<|image|>'.length);
    }
    out.push({ text: body, images });
  }
  return out;
}

const ENV_TAG = /<think>([\s\S]*?)<\/think>|<tool_call>([\s\S]*?)<\/tool_call>|<answer>([\s\S]*?)<\/answer>/g;

/**
 * A medgym action as the Qwen assistant text a Qwen model would write: the think text as plain prose,
 * each tool call as `<tool_call>\n{"name": "...", "arguments": {...}}\n</tool_call>`, the answer in
 * `<answer>` tags; pieces joined by newlines. A call whose JSON does not parse keeps its body.
 */
export function envActionToQwen(action: string): string {
  const pieces: string[] = [];
  ENV_TAG.lastIndex = 0;
  for (let m = ENV_TAG.exec(action); m; m = ENV_TAG.exec(action)) {
    if (m[1] !== undefined) pieces.push(m[1].trim());
    else if (m[2] !== undefined) pieces.push(`<tool_call>\n${qwenCallJson(m[2])}\n</tool_call>`);
    else pieces.push(`<answer>${m[3]}</answer>`);
  }
  return pieces.filter((p) => p.length > 0).join('\n');
}

function qwenCallJson(body: string): string {
  const c = parseCallBody(body);
  return c ? pyJson({ name: c.name, arguments: c.arguments }) : body.trim();
}

/** {name, arguments} from a tool-call body; arguments given as a JSON string are parsed. Undefined when it is not such an object. */
function parseCallBody(body: string): { name: string; arguments: unknown } | undefined {
  let v: unknown;
  try {
    v = JSON.parse(body.trim());
  } catch {
    return undefined;
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.name !== 'string') return undefined;
  let args = o.arguments === undefined ? {} : o.arguments;
  if (typeof args === 'string') {
    try {
      args = JSON.parse(args);
    } catch {
      return undefined;
    }
  }
  return { name: o.name, arguments: args };
}

export interface QwenActionResult {
  /** The env's action text. */
  action: string;
  /** Tool calls found (parsed or not). */
  calls: number;
  /** The text in the first <answer> tags, when there is one. */
  answer?: string;
  /** Text the mapping left out (prose after the first call/answer, end-of-turn tokens): for logs. */
  dropped: string[];
}

const QWEN_TAG = /<think>|<\/think>|<tool_call>|<answer>/g;
const END_TOKENS = /(?:<\|im_end\|>|<\|endoftext\|>)[\s\S]*$/;

/**
 * (b) A Qwen model's assistant text as the env's action text. Tolerant: whitespace and newlines
 * around and inside tags, several tool calls, arguments as a JSON string, `<answer>` inside prose,
 * a trailing `<|im_end|>` (and anything after it). Never throws.
 */
export function qwenToEnvAction(text: string): QwenActionResult {
  const dropped: string[] = [];
  let src = String(text);
  const end = END_TOKENS.exec(src);
  if (end) {
    if (end[0].replace(/^(<\|im_end\|>|<\|endoftext\|>)/, '').trim()) dropped.push(end[0]);
    src = src.slice(0, end.index);
  }
  const think: string[] = [];
  const acts: string[] = [];
  let calls = 0;
  let answer: string | undefined;
  let pos = 0;
  const prose = (s: string): void => {
    const t = s.trim();
    if (!t) return;
    if (acts.length === 0) think.push(t);
    else dropped.push(t);
  };
  for (;;) {
    QWEN_TAG.lastIndex = pos;
    const m = QWEN_TAG.exec(src);
    if (!m) {
      prose(src.slice(pos));
      break;
    }
    prose(src.slice(pos, m.index));
    const start = m.index + m[0].length;
    if (m[0] === '</think>') {
      // A stray close (Qwen3 templates may open <think> in the prompt): what came before was thought.
      pos = start;
      continue;
    }
    const close = m[0] === '<think>' ? '</think>' : m[0] === '<tool_call>' ? '</tool_call>' : '</answer>';
    const stop = src.indexOf(close, start);
    if (stop === -1) {
      // Truncated: hand the env the open tag and the rest, so it records the truncation.
      if (m[0] === '<think>') prose(src.slice(start));
      else {
        if (m[0] === '<tool_call>') calls++;
        acts.push(m[0] + src.slice(start).trim());
      }
      break;
    }
    const body = src.slice(start, stop);
    pos = stop + close.length;
    if (m[0] === '<think>') {
      if (acts.length === 0) think.push(body.trim());
      else dropped.push(m[0] + body + close);
    } else if (m[0] === '<tool_call>') {
      calls++;
      const c = parseCallBody(body);
      acts.push(`<tool_call>${c ? JSON.stringify({ name: c.name, arguments: c.arguments }) : body.trim()}</tool_call>`);
    } else {
      if (answer === undefined) answer = body.trim();
      acts.push(`<answer>${body.trim()}</answer>`);
    }
  }
  const thought = think.filter((t) => t.length > 0).join('\n');
  const action = (thought ? `<think>${thought}</think>` : '') + acts.join('');
  return answer === undefined ? { action, calls, dropped } : { action, calls, answer, dropped };
}
