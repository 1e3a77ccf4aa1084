// `<tool_call>{"name": …, "arguments": {…}}</tool_call>` spans of a completion (SPEC §3) → OpenAI
// tool_calls. A span that is not such a JSON object stays in the text (the client sees what the
// model wrote); several calls in one completion are all taken.
import type { ChatToolCall } from '../../policy/openai/types';

const SPAN = /<tool_call>([\s\S]*?)<\/tool_call>/g;

export interface ParsedToolCalls {
  /** The text less the parsed spans. */
  content: string;
  calls: ChatToolCall[];
}

function asCall(inner: string): { name: string; arguments: string } | undefined {
  let v: unknown;
  try {
    v = JSON.parse(inner.trim());
  } catch {
    return undefined;
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const { name, arguments: args } = v as { name?: unknown; arguments?: unknown };
  if (typeof name !== 'string' || name.length === 0) return undefined;
  if (args === undefined) return { name, arguments: '{}' };
  // Arguments given as a JSON string (some models write them so) pass through if they parse.
  if (typeof args === 'string') {
    try {
      JSON.parse(args);
      return { name, arguments: args };
    } catch {
      return undefined;
    }
  }
  return { name, arguments: JSON.stringify(args) };
}

/** `idPrefix` makes the call ids unique per completion choice (`call_<completion>_<choice>_<k>`). */
export function parseToolCalls(text: string, idPrefix: string): ParsedToolCalls {
  const calls: ChatToolCall[] = [];
  const content = text.replace(SPAN, (span: string, inner: string) => {
    const c = asCall(inner);
    if (!c) return span;
    calls.push({ id: `${idPrefix}_${calls.length}`, type: 'function', function: c });
    return '';
  });
  return { content, calls };
}
