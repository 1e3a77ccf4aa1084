// Request shapes of the env server (OpenEnv's ResetRequest / StepRequest / Action, plus medgym's
// episode_id session key), validated with zod so that HTTP and WebSocket share one definition and
// /schema publishes the same thing the server enforces.
import { z } from 'zod';
import { VOCAB_SIZE } from '../tokenizer';
import { EnvServerError } from './errors';

/** A session key: short, URL- and log-safe. */
export const episodeIdSchema = z.string().min(1).max(255).regex(/^[\w.:-]+$/, 'letters, digits and . _ : - only');

/** A declared dataset's name (`--dataset NAME=PATH`): no slashes, dots only inside, so never a path. */
export const DATASET_NAME = /^[A-Za-z0-9][\w-]*(\.[\w-]+)*$/;
/** What a reset names: a declared dataset, or one split of it (`NAME:test`). */
export const DATASET_REF = new RegExp(`${DATASET_NAME.source.slice(0, -1)}(:(train|val|test))?$`);

/** Longest token-id action the wire takes (longer ones are a 400; up to it, the env's per-turn budget applies as for text). */
export const MAX_ACTION_TOKENS = 65536;

/** How views travel: base64 PNG in the observation, or only their sha256 and a GET /blobs/<sha256> uri. */
export const imagesModeSchema = z.enum(['inline', 'blobs']);

/**
 * One policy turn: the assistant segment as text (SPEC §3), or as the policy's sampled token ids
 * (medgym's byte-level tokenizer; OpenEnv's token-in-token-out). Exactly one of the two.
 * `metadata` is OpenEnv's Action field; ignored.
 */
export const actionSchema = z
  .object({
    text: z.string().optional().describe("the policy's assistant segment: <think>, <tool_call>{...}</tool_call> and/or <answer>X</answer>"),
    token_ids: z
      .array(z.int().min(0).max(VOCAB_SIZE - 1))
      .max(MAX_ACTION_TOKENS)
      .optional()
      .describe(`the same segment as token ids of medgym's tokenizer (integers in [0, ${VOCAB_SIZE}), at most ${MAX_ACTION_TOKENS})`),
    metadata: z.record(z.string(), z.unknown()).optional(),
  })
  .strict()
  .refine((a) => (a.text === undefined) !== (a.token_ids === undefined), { message: 'expected exactly one of text or token_ids' });

export const resetRequestSchema = z
  .object({
    seed: z.int().min(0).nullish().describe('restart the env’s episode stream at this seed; without it the stream continues'),
    episode_id: episodeIdSchema.nullish().describe('reset this session (new episode in the same env) or create it under this id'),
    env: z.string().max(200).nullish().describe('env id of a new session (GET /metadata lists them)'),
    dataset: z
      .string()
      .max(106)
      .regex(DATASET_REF, 'a dataset name the server declares (GET /metadata lists them), optionally :train, :val or :test; never a path')
      .nullish()
      .describe('serve the items of this declared dataset, or of one split of it (NAME:test; GET /metadata datasets); default env MedGym-Dataset-v0'),
    options: z
      .object({
        index: z.int().min(0).optional().describe('item index in the task source'),
        images: imagesModeSchema.optional().describe('inline (base64 PNG, default) or blobs (sha256 + uri, GET /blobs/<sha256>); kept by the session until a reset changes it'),
      })
      .strict()
      .nullish(),
  })
  .strict();

export const stepRequestSchema = z
  .object({
    action: actionSchema,
    episode_id: episodeIdSchema.nullish(),
    request_id: z.string().max(255).nullish(),
  })
  .strict();

/** MCP-style tools/call: one step whose action is <tool_call>{"name": name, "arguments": arguments}</tool_call>. */
export const toolCallRequestSchema = z
  .object({
    name: z.string().min(1).max(100).describe('a tool of GET /tools/list'),
    arguments: z.unknown().optional().describe('the tool arguments (a JSON object; default {})'),
    episode_id: episodeIdSchema.nullish(),
    request_id: z.string().max(255).nullish(),
  })
  .strict();

export const closeRequestSchema = z.object({ episode_id: episodeIdSchema }).strict();

export type ResetRequest = z.infer<typeof resetRequestSchema>;
export type StepRequest = z.infer<typeof stepRequestSchema>;
export type Action = z.infer<typeof actionSchema>;
export type ToolCallRequest = z.infer<typeof toolCallRequestSchema>;

/** The env's action of a parsed wire action: its text or its token ids. */
export const actionOf = (a: Action): string | number[] => (a.token_ids !== undefined ? a.token_ids : (a.text as string));

/** Parses `input` or throws a 400 naming the first bad field, e.g. "body.action.text: expected string, received number". */
export function parse<T>(schema: z.ZodType<T>, input: unknown, root: string): T {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const where = issue.path.reduce<string>((s, p) => (typeof p === 'number' ? `${s}[${p}]` : `${s}.${String(p)}`), root);
  throw new EnvServerError(400, 'VALIDATION_ERROR', `${where}: ${issue.message.replace(/^Invalid input: /, '')}`);
}

const imageContent = {
  type: 'object',
  description: 'MCP image content: one view, PNG, base64 in data (images "inline") or at uri (images "blobs")',
  properties: {
    type: { const: 'image' },
    data: { type: 'string', contentEncoding: 'base64' },
    uri: { type: 'string', description: '/blobs/<sha256>: the PNG, while the server keeps it (images "blobs")' },
    mimeType: { const: 'image/png' },
    w: { type: 'integer' },
    h: { type: 'integer' },
    channels: { enum: [1, 3] },
    sha256: { type: 'string', description: 'hex SHA-256 of the raw pixels (row-major, channels interleaved), not of the PNG' },
  },
  required: ['type', 'mimeType', 'w', 'h', 'channels', 'sha256'],
} as const;

/** JSON Schemas of GET /schema (OpenEnv's SchemaResponse). */
export function wireSchemas(): { action: unknown; observation: unknown; state: unknown } {
  return {
    // Exactly one of text / token_ids (a refinement, which JSON Schema cannot see): said as oneOf.
    action: { ...z.toJSONSchema(actionSchema, { unrepresentable: 'any' }), oneOf: [{ required: ['text'] }, { required: ['token_ids'] }] },
    observation: {
      type: 'object',
      properties: {
        text: { type: 'string', description: 'text to append: the prompt at reset, the tool responses after a step, "" at the end' },
        tokens: { type: 'array', items: { type: 'integer' }, description: 'the same text as token ids (SPEC §1)' },
        images: { type: 'array', items: imageContent, description: 'one view per <|image|> in text, in order' },
        original_size: { type: 'object', properties: { width: { type: 'integer' }, height: { type: 'integer' } }, required: ['width', 'height'] },
      },
      required: ['text', 'tokens', 'images', 'original_size'],
    },
    state: {
      type: 'object',
      properties: {
        episode_id: { type: 'string' },
        env: { type: 'string' },
        step_count: { type: 'integer', minimum: 0 },
        done: { type: 'boolean' },
        episodes: { type: 'integer', minimum: 0, description: 'episodes started in this session' },
        dataset: { type: 'string', description: 'the declared dataset the session serves, when a reset named one' },
      },
      required: ['episode_id', 'env', 'step_count', 'done', 'episodes'],
    },
  };
}
