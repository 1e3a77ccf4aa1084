// Image tools the policy calls (SPEC §3): schemas, geometry, the per-episode session, the executor.
export * from './image';
export * from './geometry';
export { letterbox, originalToView, viewToOriginal } from './letterbox';
export type { Letterbox, ViewBox } from './letterbox';
export { toolSchemas, toolJsonSchemas, validateArgs, TOOL_NAMES } from './schemas';
export type { ToolName, ToolArgs } from './schemas';
export { ToolSession } from './session';
export type { ViewOptions, ToolOutput } from './session';
export { renderView, equalize } from './render';
export type { RenderOptions, ResizeKernel } from './render';
export { executeToolCall } from './execute';
export type { ToolResult } from './execute';
