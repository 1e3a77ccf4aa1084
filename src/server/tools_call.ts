// MCP-style tools/call: a side door that is exactly a step. The call {name, arguments} becomes the
// SPEC §3 action text <tool_call>{"name": ..., "arguments": ...}</tool_call>, which the env parses
// back to the same call, so turns, budgets, repeated-call checks and metrics are a step's. The
// answer is MCP's CallToolResult (content, isError) plus the step's observation, reward and done.
import { MAX_CALL_CHARS, parseAssistant } from '../env/protocol';
import { TOOL_NAMES } from '../tools/schemas';
import { didYouMean } from '../util/did_you_mean';
import { EnvServerError } from './errors';
import type { ImageContent, WireStep } from './observation';

/** Deepest nesting of arrays/objects accepted in arguments (real tool arguments nest 2 deep). */
export const MAX_ARGUMENT_DEPTH = 8;

/**
 * The action text of one tool call. Throws a 400 for an unknown tool, arguments nested deeper than
 * MAX_ARGUMENT_DEPTH, or a call whose JSON is longer than the env's tool-call limit (MAX_CALL_CHARS).
 * Wrong-typed arguments pass: the env answers them as an invalid call, as it would the same text.
 */
export function toolCallText(name: string, args: unknown, where = 'body'): string {
  if (!(TOOL_NAMES as string[]).includes(name)) {
    throw new EnvServerError(400, 'VALIDATION_ERROR', `${where}.name: unknown tool ${JSON.stringify(name.slice(0, 100))}${didYouMean(name, TOOL_NAMES)}; tools: ${TOOL_NAMES.join(', ')} (GET /tools/list)`);
  }
  const call = { name, arguments: args === undefined ? {} : args };
  checkDepth(call.arguments, `${where}.arguments`);
  // '<' escaped as \u003c: JSON.parse reads the same value back, and no string argument can hold a
  // tag (</tool_call>, <|eos|>) that would end or split the call. Lone surrogates come out escaped.
  const json = JSON.stringify(call).replace(/</g, '\\u003c');
  if (json.length > MAX_CALL_CHARS) {
    throw new EnvServerError(400, 'VALIDATION_ERROR', `${where}.arguments: the call is ${json.length} characters of JSON, at most ${MAX_CALL_CHARS} (the env's tool-call limit)`);
  }
  const text = `<tool_call>${json}</tool_call>`;
  // The env must read back exactly this call; anything else is a bug here, not the client's.
  const parsed = parseAssistant(text);
  if (parsed.formatErrors.length || parsed.calls.length !== 1 || JSON.stringify(parsed.calls[0].call) !== JSON.stringify(call)) {
    throw new Error(`tools/call text does not parse back to its call: ${parsed.formatErrors.join('; ')}`);
  }
  return text;
}

/** Iterative (a hostile nesting must not overflow the stack before JSON.stringify does). */
function checkDepth(v: unknown, where: string): void {
  const stack: [unknown, number][] = [[v, 1]];
  while (stack.length) {
    const [x, d] = stack.pop()!;
    if (x === null || typeof x !== 'object') continue;
    if (d > MAX_ARGUMENT_DEPTH) throw new EnvServerError(400, 'VALIDATION_ERROR', `${where}: nested deeper than ${MAX_ARGUMENT_DEPTH} levels`);
    for (const c of Array.isArray(x) ? x : Object.values(x)) stack.push([c, d + 1]);
  }
}

export interface ToolCallResult extends WireStep {
  content: ({ type: 'text'; text: string } | ImageContent)[];
  isError: boolean;
}

const RESPONSE = /^\n<tool_response>([\s\S]*?)(?:<\|image\|>)*<\/tool_response>\nassistant: $/;

/**
 * MCP's CallToolResult of a step: the tool response's text (without the <tool_response> wrapper and
 * the <|image|> markers) and its views; isError when the env did not run the call successfully (an
 * invalid call, or an episode that ended on this step before running it).
 */
export function toolCallResult(step: WireStep): ToolCallResult {
  const o = step.observation;
  const m = RESPONSE.exec(o.text);
  const info = step.metadata.info;
  const rec = info.toolCalls.at(-1);
  const ok = rec !== undefined && rec.turn === info.turn && rec.ok;
  return { content: [{ type: 'text', text: m ? m[1] : o.text }, ...o.images], isError: !ok, ...step };
}
