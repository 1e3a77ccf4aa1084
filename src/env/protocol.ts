// SPEC §3 turn structure: the prompt, the env's response text, and the parser of assistant
// segments. Everything here is text; the env tokenizes it once with src/tokenizer (SPEC §7).
import { SPECIAL_TOKENS } from '../tokenizer';

export const DEFAULT_SYSTEM_PROMPT =
  'You are a medical imaging assistant. Look at the image, use tools when a detail is too small to judge, then answer. ' +
  'Tools: zoom_in {"cell":"B3"} (4x4 grid, columns A-D, rows 1-4, optional "span":2) or {"bbox":[x1,y1,x2,y2]}; ' +
  'crop_multi {"bboxes":[...]}; window {"center":c,"width":w}; enhance {"method":"equalize"|"clahe"|"sharpen"}; ' +
  'rotate {"angle":90|180|270}; flip {"axis":"horizontal"|"vertical"}; view_original {}. ' +
  'Call: <tool_call>{"name":"zoom_in","arguments":{"cell":"B3"}}</tool_call>. Answer with one option letter: <answer>B</answer>.';

/** A short system text for small policies (every byte is a token): zoom by cell, answer by letter. */
export const SHORT_SYSTEM_PROMPT =
  'Zoom into a 4x4 grid cell (A-D columns, 1-4 rows) with <tool_call>{"name":"zoom_in","arguments":{"cell":"B3"}}</tool_call>, then answer <answer>B</answer>.';

export const LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** Text that must not be read as special tokens (dataset questions, echoed tool names). */
export function sanitize(text: string): string {
  let out = text;
  for (const s of SPECIAL_TOKENS) if (out.includes(s)) out = out.split(s).join('&lt;' + s.slice(1));
  return out;
}

/** The question block: question, lettered options, the original size (coordinates refer to it). */
export function formatQuestion(question: string, options: string[], width: number, height: number): string {
  const opts = options.map((o, i) => `\n${LETTERS[i]}. ${sanitize(o)}`).join('');
  return `${sanitize(question)}${opts}\nImage size: ${width}x${height} pixels.`;
}

/** `<|bos|>` + system + `\nuser: <|image|>\n` + question + `\nassistant: ` (SPEC §3). */
export function buildPrompt(system: string, question: string, options: string[], width: number, height: number): string {
  return `<|bos|>${sanitize(system)}\nuser: <|image|>\n${formatQuestion(question, options, width, height)}\nassistant: `;
}

/** `\n<tool_response>` + text + one `<|image|>` per image + `</tool_response>\nassistant: `. */
export function toolResponseText(text: string, nImages: number): string {
  return `\n<tool_response>${sanitize(text)}${'<|image|>'.repeat(nImages)}</tool_response>\nassistant: `;
}

export interface ParsedCall {
  /** Parsed {name, arguments}, or undefined when the call could not be parsed (see error). */
  call?: {
    /** The `name` field as written (the env checks it is a known tool). */
    name: unknown;
    /** The `arguments` field as written (validated by the tool's schema). */
    arguments: unknown;
  };
  /** Why the call could not be parsed (when `call` is undefined). */
  error?: string;
}

export interface ParsedSegment {
  /** Tool calls in order of appearance (parsed or not). Empty when the segment answers. */
  calls: ParsedCall[];
  /** Text inside the first <answer>…</answer> when it comes before any tool call. */
  answer?: string;
  /** Problems that make the segment malformed (format reward 0); empty when well-formed. */
  formatErrors: string[];
}

/** Longest JSON body a tool call may carry; longer ones are rejected unparsed (cheap on 1 MB junk). */
export const MAX_CALL_CHARS = 4096;

const TAG = /<tool_call>|<\/tool_call>|<answer>|<\/answer>|<think>|<\/think>|<\|eos\|>/g;

/**
 * Parses one assistant segment. Never throws. Accepts several tool calls, stray text, truncated
 * tags and invalid JSON, recording each as a format error; see docs/environment.md for the rules.
 */
export function parseAssistant(segment: string): ParsedSegment {
  const out: ParsedSegment = { calls: [], formatErrors: [] };
  const err = (e: string): void => {
    if (out.formatErrors.length < 8) out.formatErrors.push(e);
  };
  let pos = 0;
  let sawThink = false;
  let sawContent = false;
  let afterAnswer = false;
  TAG.lastIndex = 0;
  const stray = (from: number, to: number): void => {
    if (segment.slice(from, to).trim().length > 0) err(afterAnswer ? 'text after </answer>' : 'stray text outside tags');
  };
  for (;;) {
    TAG.lastIndex = pos;
    const m = TAG.exec(segment);
    if (!m) {
      stray(pos, segment.length);
      break;
    }
    stray(pos, m.index);
    const open = m[0];
    const start = m.index + open.length;
    if (open === '<|eos|>') {
      if (out.answer === undefined) err('<|eos|> before an answer');
      stray(start, segment.length);
      break;
    }
    const closeTag = open === '<tool_call>' ? '</tool_call>' : open === '<answer>' ? '</answer>' : open === '<think>' ? '</think>' : null;
    if (closeTag === null) {
      err(`unexpected ${open}`);
      pos = start;
      continue;
    }
    const end = segment.indexOf(closeTag, start);
    if (end === -1) {
      err(`truncated ${open} (no ${closeTag})`);
      if (open === '<tool_call>' && out.answer === undefined) out.calls.push({ error: `truncated tool call: no </tool_call>` });
      break;
    }
    const body = segment.slice(start, end);
    pos = end + closeTag.length;
    if (open === '<think>') {
      if (sawThink || sawContent) err('<think> must come once, first');
      sawThink = true;
      if (/<(\/?)(tool_call|answer|think)>/.test(body)) err('tags nested in <think>');
      continue;
    }
    sawContent = true;
    if (afterAnswer) {
      err(`${open} after </answer>`);
      continue;
    }
    if (open === '<answer>') {
      if (out.calls.length > 0) {
        err('<answer> in the same segment as a tool call (ignored)');
        continue;
      }
      out.answer = body;
      afterAnswer = true;
      continue;
    }
    out.calls.push(parseCall(body, err));
  }
  if (out.calls.length === 0 && out.answer === undefined) err('neither a tool call nor an answer');
  return out;
}

function parseCall(body: string, err: (e: string) => void): ParsedCall {
  if (body.length > MAX_CALL_CHARS) {
    err('tool call too long');
    return { error: `tool call longer than ${MAX_CALL_CHARS} characters` };
  }
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch (e) {
    err('invalid JSON in tool call');
    return { error: `invalid JSON in tool call: ${e instanceof Error ? e.message.slice(0, 120) : 'parse error'}` };
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    err('tool call is not a JSON object');
    return { error: 'Expected a JSON object {"name": ..., "arguments": {...}} in <tool_call>' };
  }
  const o = v as Record<string, unknown>;
  if (typeof o.name !== 'string') {
    err('tool call without a name');
    return { error: `Expected string for name but received ${o.name === undefined ? 'nothing (missing)' : typeof o.name}` };
  }
  const extra = Object.keys(o).filter((k) => k !== 'name' && k !== 'arguments');
  if (extra.length) err('unknown keys in tool call');
  return { call: { name: o.name, arguments: o.arguments } };
}
