// Runs one parsed tool call. Never throws: a bad call comes back as { ok: false, error } so the env
// can answer it with an error <tool_response> and the episode goes on.
import { cropMulti } from './crop_multi';
import { enhance } from './enhance';
import { flip } from './flip';
import { RegionError } from './geometry';
import type { Box, ViewImage } from './image';
import { rotate } from './rotate';
import { TOOL_NAMES, validateArgs, type ToolName } from './schemas';
import type { ToolOutput, ToolSession } from './session';
import { viewOriginal } from './view_original';
import { ToolUseError, windowTool } from './window';
import { zoomIn } from './zoom_in';

export interface ToolResult {
  /** The call was valid and ran. */
  ok: boolean;
  /** The tool's name as called (truncated), or '' when it had none. */
  name: string;
  /** Result text for the <tool_response> (an "error: …" sentence when !ok). */
  text: string;
  /** The views the tool returned (empty when !ok). */
  images: ViewImage[];
  /** Regions of the original shown (for the IoU reward). */
  boxes: Box[];
  /** Why the call failed (when !ok): the text after "error: ". */
  error?: string;
}

const RUNNERS: { [N in ToolName]: (s: ToolSession, a: never) => Promise<ToolOutput> } = {
  zoom_in: zoomIn,
  crop_multi: cropMulti,
  window: windowTool,
  enhance,
  rotate,
  flip,
  view_original: viewOriginal,
};

const fail = (name: string, error: string): ToolResult => ({ ok: false, name, text: `error: ${error}`, images: [], boxes: [], error });

export async function executeToolCall(s: ToolSession, call: { name: unknown; arguments: unknown }): Promise<ToolResult> {
  const rawName = typeof call.name === 'string' ? call.name.slice(0, 40) : '';
  if (typeof call.name !== 'string') return fail('', `Expected string for name but received ${typeof call.name}`);
  if (!(TOOL_NAMES as string[]).includes(call.name)) {
    return fail(rawName, `unknown tool ${JSON.stringify(rawName)}; tools: ${TOOL_NAMES.join(', ')}`);
  }
  const name = call.name as ToolName;
  const args = call.arguments === undefined ? {} : call.arguments;
  const v = validateArgs(name, args);
  if (!v.ok) return fail(name, v.error);
  try {
    const out = await RUNNERS[name](s, v.value as never);
    return { ok: true, name, ...out };
  } catch (err) {
    if (err instanceof RegionError || err instanceof ToolUseError) return fail(name, err.message);
    // Anything else is an internal failure (e.g. sharp); still answered, never thrown into the run.
    return fail(name, `internal error in ${name}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
