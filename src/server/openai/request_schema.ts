// The zod schema of POST /v1/chat/completions (the wire types of src/policy/openai/types.ts) and
// the parse that turns its first issue into a 400 naming the field. Shapes only: limits that depend
// on the model or the server's flags are checked by ./prompt.ts and ./sampling.ts.
import { z } from 'zod';
import { invalid } from './errors';

const nonNegInt = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const textPart = z.object({ type: z.literal('text'), text: z.string() });
const imagePart = z.object({
  type: z.literal('image_url'),
  image_url: z.object({ url: z.string(), detail: z.enum(['auto', 'low', 'high']).optional() }),
});
const contentPart = z.discriminatedUnion('type', [textPart, imagePart]);
const toolCall = z.object({
  id: z.string(),
  type: z.literal('function'),
  function: z.object({ name: z.string(), arguments: z.string() }),
});

const message = z.object({
  // 'developer' is OpenAI's newer name for 'system'.
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
  content: z.union([z.string(), z.array(contentPart)]).nullish(),
  tool_calls: z.array(toolCall).nullish(),
  tool_call_id: z.string().nullish(),
  name: z.string().nullish(),
  token_ids: z.array(nonNegInt).nullish(),
});

const tool = z.object({
  type: z.literal('function'),
  function: z.object({ name: z.string().min(1), description: z.string().nullish(), parameters: z.unknown().optional() }),
});

const sampleKey = z.object({
  seed: nonNegInt,
  step: nonNegInt.default(0),
  prompt_index: nonNegInt.default(0),
  sample_index: nonNegInt.default(0),
  counter: nonNegInt.default(0),
});

export const chatRequestSchema = z.object({
  model: z.string().min(1),
  messages: z.array(message).min(1),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  max_tokens: z.number().int().min(1).nullish(),
  max_completion_tokens: z.number().int().min(1).nullish(),
  n: z.number().int().min(1).nullish(),
  stop: z.union([z.string().min(1), z.array(z.string().min(1)).max(16)]).nullish(),
  seed: nonNegInt.nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  tools: z.array(tool).nullish(),
  tool_choice: z
    .union([z.enum(['none', 'auto', 'required']), z.object({ type: z.literal('function'), function: z.object({ name: z.string() }) })])
    .nullish(),
  logit_bias: z.record(z.string(), z.number()).nullish(),
  user: z.string().nullish(),
  stop_token_ids: z.array(nonNegInt).nullish(),
  return_token_ids: z.boolean().nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
  medgym_sample_key: sampleKey.nullish(),
});

export type ChatRequest = z.infer<typeof chatRequestSchema>;
export type ChatRequestMessage = ChatRequest['messages'][number];

/** The request, or a 400 naming the first field at fault (`messages[0].content[1].image_url.url`). */
export function parseChatRequest(body: unknown): ChatRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw invalid('body', 'expected a JSON object');
  const r = chatRequestSchema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const where = issue.path.reduce<string>((s, p) => (typeof p === 'number' ? `${s}[${p}]` : s ? `${s}.${String(p)}` : String(p)), '');
  throw invalid(where || 'body', issue.message.replace(/^Invalid input: /, ''));
}
